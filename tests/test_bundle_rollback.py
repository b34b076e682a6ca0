"""No rollback: with signing on, a signed bundle must be newer than the newest one the store
accepted, through the admin reload, the file watch and a restart, unless a downgrade is allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.audit.backends import open_log
from maestro_gate.authoring.build import sign_directory
from maestro_gate.config import Settings
from maestro_gate.core.errors import BundleError
from maestro_gate.engine.revision import revision_key
from tests.conftest import DECISION_REGO, write_bundle
from tests.conftest import make_settings as conftest_settings
from tests.fault_support import own_database, wait_for

RELOAD = "/v1/admin/bundle/reload"
DECISION = "maestro/decision/decision.rego"


@pytest.fixture(scope="module")
def key() -> ed25519.Ed25519PrivateKey:
    """One signing key for the module."""
    return ed25519.Ed25519PrivateKey.generate()


def pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def signed(bundle: Path, revision: str, key: ed25519.Ed25519PrivateKey, note: str = "") -> Path:
    """Rewrite `bundle` at `revision` (its policy text varied by `note`) and sign it."""
    write_bundle(bundle, {DECISION: DECISION_REGO + note}, revision=revision)
    sign_directory(bundle, pem(key))
    return bundle


def settings_for(
    tmp_path: Path, bundle: Path, key: ed25519.Ed25519PrivateKey, **overrides: Any
) -> Settings:
    """Signing on with `key`'s public half; caller authentication off (not under test here)."""
    public = tmp_path / "bundle.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return conftest_settings(
        tmp_path, bundle, auth="off", bundle_public_key_file=public, **overrides
    )


def revision(client: TestClient) -> str | None:
    """The active revision, from /v1/status."""
    bundle = client.get("/v1/status").json()["bundle"]
    return bundle["revision"] if bundle else None


def events(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """The audit log's event records of one type."""
    log = open_log(settings.audit_dsn)
    records = [json.loads(row.record) for row in log.rows()]
    return [r for r in records if r.get("type") == kind]


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0.1.0", "0.3.0"), ("1.9", "1.10"), ("1.2", "1.2.1"), ("7", "2026.1"), ("0.9.9.9", "1")],
)
def test_revisions_compare_number_by_number(older: str, newer: str) -> None:
    """Dotted decimal numbers compare numerically; missing trailing numbers count as 0."""
    assert revision_key(older) < revision_key(newer)
    assert revision_key("1.2") == revision_key("1.2.0")


@pytest.mark.parametrize("text", ["r1", "v1.0", "1.2.0-rc1", "01.2", "1..2", "1.2.3.4.5", ""])
def test_a_revision_that_cannot_be_compared_is_refused_naming_it(text: str) -> None:
    """Anything but one to four dot-separated numbers is a BundleError naming the revision."""
    with pytest.raises(BundleError, match="cannot be compared") as refused:
        revision_key(text)
    assert refused.value.errors[0] == {"code": "revision_not_comparable", "message": text}


def test_an_older_signed_bundle_is_refused_by_the_admin_reload_naming_both(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """0.1.0 after 0.3.0 is a 422 naming both revisions; the same revision re-signed too."""
    bundle = signed(tmp_path / "bundle", "0.3.0", key)
    with TestClient(create_app(settings_for(tmp_path, bundle, key))) as client:
        assert revision(client) == "0.3.0"
        assert client.post(RELOAD).status_code == 200  # the same bundle again is no downgrade
        signed(bundle, "0.1.0", key)
        response = client.post(RELOAD)
        assert response.status_code == 422
        answer = response.json()
        assert "0.1.0 is not newer than 0.3.0" in answer["message"]
        assert answer["errors"][0]["location"] == {"candidate": "0.1.0", "accepted": "0.3.0"}
        signed(bundle, "0.3.0", key, note="\n# changed\n")
        response = client.post(RELOAD)
        assert response.status_code == 422
        assert "a different bundle with the same revision" in response.json()["message"]
        assert revision(client) == "0.3.0"
        signed(bundle, "0.4.0", key)
        assert client.post(RELOAD).json()["bundle"]["revision"] == "0.4.0"


def test_an_admin_may_allow_a_downgrade_and_it_is_audited(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """allow_downgrade=true activates the older bundle after a bundle_downgrade_allowed event."""
    bundle = signed(tmp_path / "bundle", "0.3.0", key)
    settings = settings_for(tmp_path, bundle, key)
    with TestClient(create_app(settings)) as client:
        signed(bundle, "0.1.0", key)
        response = client.post(RELOAD, params={"allow_downgrade": "true"})
        assert response.status_code == 200, response.text
        assert response.json()["bundle"]["revision"] == "0.1.0"
        assert revision(client) == "0.1.0"
    [event] = events(settings, "bundle_downgrade_allowed")
    assert event["detail"]["from"]["revision"] == "0.3.0"
    assert event["detail"]["to"]["revision"] == "0.1.0"
    assert event["detail"]["by"] == "anonymous"
    with TestClient(create_app(settings)) as client:
        assert revision(client) == "0.1.0"  # the floor moved down with the allowed downgrade


def test_the_file_watch_refuses_an_older_signed_bundle(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """A rollback dropped into the watched directory is refused; the active bundle stays."""
    bundle = signed(tmp_path / "bundle", "0.3.0", key)
    settings = settings_for(tmp_path, bundle, key, bundle_watch_s=0.01)
    with TestClient(create_app(settings)) as client:
        signed(bundle, "0.1.0", key)
        assert wait_for(lambda: client.get("/v1/status").json()["last_reload_error"] is not None)
        error = client.get("/v1/status").json()["last_reload_error"]
        assert "0.1.0 is not newer than 0.3.0" in error
        assert revision(client) == "0.3.0"
        signed(bundle, "0.5.0", key)
        assert wait_for(lambda: revision(client) == "0.5.0")


def test_the_floor_survives_a_restart(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    """A gate started later on the same store refuses the older bundle; the same one loads."""
    bundle = signed(tmp_path / "bundle", "0.3.0", key)
    settings = settings_for(tmp_path, bundle, key)
    with TestClient(create_app(settings)) as client:
        assert revision(client) == "0.3.0"
    with TestClient(create_app(settings)) as client:
        assert revision(client) == "0.3.0"
    signed(bundle, "0.1.0", key)
    with TestClient(create_app(settings)) as client:
        assert revision(client) is None
        assert (
            "0.1.0 is not newer than 0.3.0" in client.get("/v1/status").json()["last_reload_error"]
        )
        assert client.get("/ready").status_code == 503


def test_a_changed_registry_file_is_no_downgrade(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """The floor compares the signed files: a registry file given apart may change freely."""
    bundle = signed(tmp_path / "bundle", "0.3.0", key)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"agents": {}}))
    settings = settings_for(tmp_path, bundle, key, registry_file=registry)
    with TestClient(create_app(settings)) as client:
        registry.write_text(json.dumps({"agents": {"spiffe://corp.example/agent/x": {}}}))
        assert client.post(RELOAD).status_code == 200


def test_with_signing_on_an_incomparable_revision_is_refused(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """A signed bundle named `release-7` cannot be ordered, so it is not activated."""
    bundle = signed(tmp_path / "bundle", "release-7", key)
    with TestClient(create_app(settings_for(tmp_path, bundle, key))) as client:
        assert revision(client) is None
        assert (
            "'release-7' cannot be compared" in client.get("/v1/status").json()["last_reload_error"]
        )


@pytest.mark.postgres
def test_a_replica_started_later_on_postgresql_cannot_be_fed_an_old_bundle(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """The floor lives in PostgreSQL: a second gate on the same database refuses 0.1.0."""
    with own_database() as dsn:
        first = signed(tmp_path / "first", "0.3.0", key)
        with TestClient(create_app(settings_for(tmp_path, first, key, audit_dsn=dsn))) as one:
            assert revision(one) == "0.3.0"
            old = signed(tmp_path / "old", "0.1.0", key)
            replica = settings_for(tmp_path, old, key, audit_dsn=dsn)
            with TestClient(create_app(replica)) as two:
                assert revision(two) is None
                error = two.get("/v1/status").json()["last_reload_error"]
                assert "0.1.0 is not newer than 0.3.0" in error
