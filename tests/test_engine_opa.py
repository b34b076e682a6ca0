"""The OPA engine over real HTTP on loopback, against the OPA stand-in (tests/opa_standin.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.config import Settings
from maestro_gate.core.decision.ports import BundleInfo
from maestro_gate.core.errors import EngineError
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.wiring import Gate, build
from tests.conftest import action, make_settings, write_bundle
from tests.opa_standin import Misbehaviour, OpaStandIn


@pytest.fixture
def opa(bundle: Path) -> Iterator[OpaStandIn]:
    """The stand-in OPA serving the small test bundle (revision test-1) as bundle `maestro`."""
    with OpaStandIn(read_bundle(bundle), slow_s=30.0) as standin:
        yield standin


def opa_settings(tmp_path: Path, opa: OpaStandIn, **overrides: Any) -> Settings:
    """Settings for engine=opa against the stand-in, callers unauthenticated, no local bundle."""
    values: dict[str, Any] = {"engine": "opa", "opa_url": opa.url, "auth": "off", **overrides}
    return make_settings(tmp_path, tmp_path / "no-local-bundle", **values)


@pytest.fixture
def gate(tmp_path: Path, opa: OpaStandIn) -> Iterator[TestClient]:
    """The service with engine=opa, lifespan running, a 1 s decision deadline (slow_s is 30 s)."""
    with TestClient(create_app(opa_settings(tmp_path, opa, decision_timeout_ms=1000))) as client:
        yield client


def decide(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/decide and return the JSON answer (which must be a 200)."""
    response = client.post("/v1/decide", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def reload(client: TestClient) -> BundleInfo:
    """Run `Gate.reload` on the running app's event loop."""
    running: Gate = client.app.state.gate  # type: ignore[attr-defined]
    assert client.portal is not None
    return client.portal.call(running.reload)


def test_decisions_come_from_opa_with_its_decision_id_and_revision(gate: TestClient) -> None:
    """An OPA answer is the decision; policy names engine opa, OPA's decision_id and revision."""
    allowed = decide(gate, action())
    denied = decide(gate, action("shell.exec"))
    assert allowed["decision"] == "allow"
    assert denied["decision"] == "deny"
    assert denied["reasons"][0]["rule"] == "L3.tool_not_allowlisted"
    policy = allowed["policy"]
    assert policy["engine"] == "opa"
    assert policy["revision"] == "test-1"
    assert policy["digest"] == "opa:test-1"
    assert uuid.UUID(policy["engine_decision_id"])
    assert policy["engine_decision_id"] != denied["policy"]["engine_decision_id"]


def test_opa_mode_never_compiles_the_local_bundle(gate: TestClient) -> None:
    """With engine=opa and no local bundle directory the gate is ready on OPA's bundle alone."""
    ready = gate.get("/ready")
    assert ready.status_code == 200, ready.text
    status = gate.get("/v1/status").json()
    assert status["engine"] == "opa"
    assert status["engine_reachable"] is True
    assert status["last_reload_error"] is None
    assert status["bundle"]["revision"] == "test-1"
    assert status["bundle"]["digest"] == "opa:test-1"
    assert status["bundle"]["activated_at"]
    assert status["audit"]["records"] == 0
    assert "last_checkpoint" in status["audit"]


@pytest.mark.parametrize(
    ("misbehaviour", "rule"),
    [
        (Misbehaviour.ERROR, "GATE.engine_error"),
        (Misbehaviour.UNDEFINED, "GATE.engine_error"),
        (Misbehaviour.GARBAGE, "GATE.engine_error"),
        (Misbehaviour.DROP, "GATE.engine_error"),
        (Misbehaviour.NOT_FOUND, "GATE.engine_error"),
        (Misbehaviour.SLOW, "GATE.engine_timeout"),
    ],
)
def test_misbehaving_opa_denies_and_the_service_stays_responsive(
    gate: TestClient, opa: OpaStandIn, misbehaviour: Misbehaviour, rule: str
) -> None:
    """Each OPA failure is an audited deny with its GATE reason; the next decision is normal."""
    opa.misbehaviour = misbehaviour
    failed = decide(gate, action())
    assert failed["decision"] == "deny"
    assert [r["rule"] for r in failed["reasons"]] == [rule]
    assert failed["policy"]["engine"] == "opa"
    assert gate.get("/health").status_code == 200
    opa.misbehaviour = Misbehaviour.NONE
    assert decide(gate, action())["decision"] == "allow"
    assert gate.get("/v1/status").json()["audit"]["records"] == 2


def test_engine_errors_are_counted_by_kind(gate: TestClient, opa: OpaStandIn) -> None:
    """An OPA error and an OPA timeout are counted apart in maestro_engine_errors_total."""
    opa.misbehaviour = Misbehaviour.ERROR
    decide(gate, action())
    opa.misbehaviour = Misbehaviour.SLOW
    decide(gate, action())
    text = gate.get("/metrics").text
    assert 'maestro_engine_errors_total{engine="opa",error="error"} 1.0' in text
    assert 'maestro_engine_errors_total{engine="opa",error="timeout"} 1.0' in text


def test_keep_alive_connections_are_pooled(gate: TestClient, opa: OpaStandIn) -> None:
    """Sequential decisions reuse one pooled connection instead of connecting each time."""
    before = opa.connections
    for _ in range(20):
        decide(gate, action())
    assert opa.decisions >= 20
    assert opa.connections - before <= 1


def test_revision_follows_a_bundle_opa_activates(
    tmp_path: Path, gate: TestClient, opa: OpaStandIn
) -> None:
    """When OPA activates a new revision, the next decision records it and bundle_info shows it."""
    opa.activate(read_bundle(write_bundle(tmp_path / "b2", revision="test-2")))
    assert decide(gate, action())["policy"]["revision"] == "test-2"
    assert gate.get("/v1/status").json()["bundle"]["revision"] == "test-2"
    text = gate.get("/metrics").text
    assert 'maestro_bundle_info{digest="opa:test-2",engine="opa",revision="test-2"} 1.0' in text


def test_reload_asks_opa_status_for_the_active_revision(
    tmp_path: Path, gate: TestClient, opa: OpaStandIn
) -> None:
    """Gate.reload in opa mode reads the revision and activation time OPA's status reports."""
    opa.activate(read_bundle(write_bundle(tmp_path / "b2", revision="test-2")))
    info = reload(gate)
    assert info.revision == "test-2"
    assert info.digest == "opa:test-2"
    assert gate.get("/v1/status").json()["bundle"]["activated_at"] == info.activated_at


def test_reload_without_the_status_plugin_reads_bundle_manifests(
    tmp_path: Path, bundle: Path
) -> None:
    """Without OPA's status plugin, reload reads the revision from data.system.bundles."""
    with OpaStandIn(read_bundle(bundle), status_plugin=False) as opa:
        client = TestClient(create_app(opa_settings(tmp_path, opa)))
        with client:
            assert client.get("/v1/status").json()["bundle"]["revision"] == "test-1"
            assert client.get("/ready").status_code == 200


def test_a_bundle_error_opa_reports_is_a_reload_error(gate: TestClient, opa: OpaStandIn) -> None:
    """A bundle error in OPA's status is counted and shown; OPA's kept revision stays active."""
    opa.bundle_error = "bundle signature verification failed"
    with pytest.raises(Exception, match="signature verification failed"):
        reload(gate)
    status = gate.get("/v1/status").json()
    assert "signature verification failed" in status["last_reload_error"]
    assert status["bundle"]["revision"] == "test-1"
    assert "maestro_bundle_activation_failures_total 1.0" in gate.get("/metrics").text


def test_readiness_fails_while_opa_is_down_and_recovers(gate: TestClient, opa: OpaStandIn) -> None:
    """With OPA down /ready is 503 naming the engine, decisions deny, and both recover with it."""
    assert gate.get("/ready").status_code == 200
    opa.stop()
    ready = gate.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["engine_reachable"] is False
    assert 'maestro_engine_up{engine="opa"} 0.0' in gate.get("/metrics").text
    down = decide(gate, action())
    assert down["decision"] == "deny"
    assert down["reasons"][0]["rule"] == "GATE.engine_error"
    opa.start()
    assert gate.get("/ready").status_code == 200
    assert 'maestro_engine_up{engine="opa"} 1.0' in gate.get("/metrics").text
    assert decide(gate, action())["decision"] == "allow"


def test_gate_started_before_opa_becomes_ready_when_opa_does(tmp_path: Path, bundle: Path) -> None:
    """A gate started while OPA is down is not ready, then learns the revision once OPA is up."""
    opa = OpaStandIn(read_bundle(bundle))
    opa.start()
    opa.stop()
    try:
        with TestClient(create_app(opa_settings(tmp_path, opa))) as client:
            assert client.get("/ready").status_code == 503
            assert client.get("/v1/status").json()["bundle"] is None
            opa.start()
            assert client.get("/ready").status_code == 200
            assert client.get("/v1/status").json()["bundle"]["revision"] == "test-1"
    finally:
        opa.close()


def token_settings(tmp_path: Path, opa: OpaStandIn, token: str) -> Settings:
    """Settings for the stand-in with the gate's OPA token in a file holding `token`."""
    token_file = tmp_path / "opa.token"
    token_file.write_text(f"{token}\n")
    return opa_settings(tmp_path, opa, opa_token_file=token_file)


def test_a_token_file_authenticates_the_gate_to_opa(tmp_path: Path, opa: OpaStandIn) -> None:
    """OPA run with --authentication=token: every call, health included, carries the token."""
    opa.token = "s3cret-token-1"
    with TestClient(create_app(token_settings(tmp_path, opa, "s3cret-token-1"))) as client:
        assert client.get("/ready").status_code == 200
        assert decide(client, action())["decision"] == "allow"
        assert decide(client, action("shell.exec"))["decision"] == "deny"
    assert opa.decisions >= 2
    assert opa.refused == 0


def test_without_the_token_opa_refuses_and_every_decision_is_a_deny(
    tmp_path: Path, opa: OpaStandIn
) -> None:
    """OPA's 401 is an answer like any error: not ready, and an audited deny naming the status."""
    opa.token = "s3cret-token-1"
    with TestClient(create_app(opa_settings(tmp_path, opa))) as client:
        assert client.get("/ready").status_code == 503
        denied = decide(client, action())
        assert denied["decision"] == "deny"
        assert [r["rule"] for r in denied["reasons"]] == ["GATE.engine_error"]
        assert "HTTP 401" in denied["reasons"][0]["message"]
        assert client.get("/v1/status").json()["audit"]["records"] == 1
    assert opa.refused >= 2


def test_a_rotated_token_is_taken_up_on_reload(tmp_path: Path, opa: OpaStandIn) -> None:
    """A new token in the file works from the next reload; an unreadable file keeps the old one."""
    opa.token = "token-1"
    settings = token_settings(tmp_path, opa, "token-1")
    assert settings.opa_token_file is not None
    with TestClient(create_app(settings)) as client:
        assert decide(client, action())["decision"] == "allow"
        opa.token = "token-2"  # OPA rotated first: refused until the gate reloads
        assert decide(client, action())["decision"] == "deny"
        settings.opa_token_file.write_text("token-2")
        assert reload(client).revision == "test-1"
        assert decide(client, action())["decision"] == "allow"
        settings.opa_token_file.unlink()
        with pytest.raises(EngineError, match="previous token stays in use"):
            reload(client)
        refused = client.post("/v1/admin/bundle/reload")
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "engine_error"
        assert "previous token stays in use" in refused.json()["message"]
        assert decide(client, action())["decision"] == "allow"
        error = client.get("/v1/status").json()["last_reload_error"]
        assert "cannot read the OPA token file" in error
        assert "token-2" not in error


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read the OPA token file"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ("two words", "spaces or control characters"),
        ("tok\x01en", "spaces or control characters"),
    ],
)
def test_an_unusable_token_file_stops_the_gate_from_starting(
    tmp_path: Path, opa: OpaStandIn, content: str | None, error: str
) -> None:
    """A token file the gate cannot use is a configuration error at start, naming the file."""
    token_file = tmp_path / "opa.token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(ValueError, match=error) as raised:
        build(opa_settings(tmp_path, opa, opa_token_file=token_file))
    assert str(token_file) in str(raised.value)
