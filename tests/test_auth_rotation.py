"""Credentials change without a restart: keys added and revoked, a JWKS rotated, bad files refused.

Over the real app, with the CLI and the file writes an operator would use, and a refresh
interval of 0 (the files are checked at every request); `Watched` itself with a fake clock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.auth.watched import Watched
from maestro_gate.cli import main
from maestro_gate.config import Settings
from tests.auth_support import ANALYST, act, gate_settings
from tests.test_auth import AUDIENCE, ISSUER, _bearer, _jwk, _token


def _replace(path: Path, text: str) -> None:
    """Write a file the way a deployment tool does: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.replace(tmp, path)


def _decide(client: TestClient, headers: dict[str, str]) -> int:
    return client.post("/v1/decide", json=act(), headers=headers).status_code


def _jwks_settings(tmp_path: Path, *keys: tuple[Any, str]) -> tuple[Settings, Path]:
    """Settings authenticating JWTs only, against a JWKS file of `(private key, kid)` pairs."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(key, "EdDSA", kid) for key, kid in keys]}))
    settings, _ = gate_settings(
        tmp_path,
        api_keys_file=None,
        jwks_file=jwks,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        credentials_refresh_s=0,
    )
    return settings, jwks


def test_a_key_added_and_revoked_with_the_cli_takes_effect_without_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`auth add-key` works at once against the running gate; `auth revoke-key` stops it."""
    settings, headers = gate_settings(tmp_path, credentials_refresh_s=0)
    keys_file = str(settings.api_keys_file)
    with TestClient(create_app(settings)) as client:
        added = ["auth", "add-key", "--name", "late", "--roles", "agent", "--subject", ANALYST]
        capsys.readouterr()  # the start-up log lines
        assert main([*added, "--file", keys_file]) == 0
        late = {"X-API-Key": capsys.readouterr().out.strip().splitlines()[-1]}
        assert _decide(client, late) == 200
        assert main(["auth", "revoke-key", "--name", "late", "--file", keys_file]) == 0
        assert "refuses it" in capsys.readouterr().err
        refused = client.post("/v1/decide", json=act(), headers=late)
        assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")
        assert _decide(client, headers["runtime"]) == 200  # the other keys are untouched


def test_revoking_an_unknown_key_fails_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name not in the file is an error (exit 1), and the file is left as it was."""
    settings, _ = gate_settings(tmp_path)
    assert settings.api_keys_file is not None
    before = settings.api_keys_file.read_text()
    code = main(["auth", "revoke-key", "--name", "nobody", "--file", str(settings.api_keys_file)])
    assert code == 1
    assert "no key named 'nobody'" in capsys.readouterr().err
    assert settings.api_keys_file.read_text() == before


def test_a_rotated_jwks_is_taken_up_without_a_restart(tmp_path: Path) -> None:
    """A new signing key is accepted and the retired one refused as soon as the JWKS changes."""
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    settings, jwks = _jwks_settings(tmp_path, (old, "k1"))
    old_token = _bearer(_token(old, "EdDSA", "k1", roles=["agent"]))
    new_token = _bearer(_token(new, "EdDSA", "k2", roles=["agent"]))
    with TestClient(create_app(settings)) as client:
        assert _decide(client, old_token) == 200
        assert _decide(client, new_token) == 401
        _replace(jwks, json.dumps({"keys": [_jwk(old, "EdDSA", "k1"), _jwk(new, "EdDSA", "k2")]}))
        assert _decide(client, new_token) == 200
        assert _decide(client, old_token) == 200
        _replace(jwks, json.dumps({"keys": [_jwk(new, "EdDSA", "k2")]}))
        assert _decide(client, old_token) == 401
        assert _decide(client, new_token) == 200


@pytest.mark.parametrize(
    "broken",
    ["{not json", '{"keys": 7}', '{"keys": [{"name": "x"}]}', None],
    ids=["malformed", "keys-not-a-list", "entry-without-hash", "missing"],
)
def test_a_keys_file_that_no_longer_loads_keeps_the_previous_keys_and_is_logged_once(
    tmp_path: Path, broken: str | None
) -> None:
    """Garbage, a bad entry or a deleted file: the keys in force stay, one error is logged."""
    settings, headers = gate_settings(tmp_path, credentials_refresh_s=0)
    assert settings.api_keys_file is not None
    good = settings.api_keys_file.read_text()
    with TestClient(create_app(settings)) as client:
        with structlog.testing.capture_logs() as logs:
            if broken is None:
                settings.api_keys_file.unlink()
            else:
                _replace(settings.api_keys_file, broken)
            assert _decide(client, headers["runtime"]) == 200
            assert _decide(client, headers["runtime"]) == 200
        failures = [e for e in logs if e["event"] == "credentials_reload_failed"]
        assert len(failures) == 1
        assert failures[0]["file"] == str(settings.api_keys_file)
        assert failures[0]["log_level"] == "error"
        emptied = json.dumps({"keys": [e for e in json.loads(good)["keys"] if e["name"] == "root"]})
        _replace(settings.api_keys_file, emptied)  # fixed: only `root` remains
        assert _decide(client, headers["runtime"]) == 401
        assert _decide(client, headers["root"]) == 200


def test_a_jwks_without_a_usable_key_keeps_the_previous_keys(tmp_path: Path) -> None:
    """A JWKS emptied or holding a malformed key is refused; tokens keep verifying."""
    key = ed25519.Ed25519PrivateKey.generate()
    settings, jwks = _jwks_settings(tmp_path, (key, "k1"))
    token = _bearer(_token(key, "EdDSA", "k1", roles=["agent"]))
    with TestClient(create_app(settings)) as client:
        for broken in ({"keys": []}, {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!"}]}, []):
            _replace(jwks, json.dumps(broken))
            assert _decide(client, token) == 200


def test_files_are_checked_at_most_once_per_interval(tmp_path: Path) -> None:
    """Between checks the loaded value is served without touching the file."""
    path = tmp_path / "value.txt"
    path.write_text("one")
    now = [100.0]
    loads: list[str] = []

    def load(p: Path) -> str:
        text = p.read_text()
        loads.append(text)
        return text

    watched: Watched[Any] = Watched(path, load, interval_s=1.0, clock=lambda: now[0])
    _replace(path, "two")
    now[0] += 0.5
    assert watched.current() == "one"
    now[0] += 0.6
    assert watched.current() == "two"
    now[0] += 5
    assert watched.current() == "two"
    assert loads == ["one", "two"]  # unchanged files are not read again


def test_list_keys_shows_who_may_call_and_never_a_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`auth list-keys` names each principal with its roles and subjects; revoked ones go."""
    settings, _ = gate_settings(tmp_path)
    keys_file = str(settings.api_keys_file)
    assert main(["auth", "list-keys", "--file", keys_file, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {entry["name"]: entry for entry in listed}
    assert by_name["runtime"] == {"name": "runtime", "roles": ["agent"], "subjects": [ANALYST]}
    assert all("sha256" not in entry for entry in listed)
    assert main(["auth", "revoke-key", "--name", "runtime", "--file", keys_file]) == 0
    capsys.readouterr()
    assert main(["auth", "list-keys", "--file", keys_file]) == 0
    out, err = capsys.readouterr()
    assert "runtime" not in [line.split("\t")[0] for line in out.splitlines()]
    assert "admin\troles=policy_admin\tsubjects=-" in out
    assert f"{len(listed) - 1} keys in {keys_file}" in err
    stored = json.loads(Path(keys_file).read_text())["keys"][0]["sha256"]
    assert stored not in out + err
