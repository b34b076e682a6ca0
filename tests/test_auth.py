"""Caller authentication and roles over the real app: API keys, JWTs, binding, role gates."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.auth.keys import KeyRing, key_hash, read_keys
from maestro_gate.cli import main
from maestro_gate.config import Settings
from maestro_gate.wiring import build
from tests.auth_support import ANALYST, CODER, act, events, gate_settings

ISSUER = "https://idp.corp.example"
AUDIENCE = "maestro-gate"


def _signing_key(algorithm: str) -> Any:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(private: Any, algorithm: str, kid: str) -> dict[str, Any]:
    jwk_class = {
        "EdDSA": jwt.algorithms.OKPAlgorithm,
        "ES256": jwt.algorithms.ECAlgorithm,
        "RS256": jwt.algorithms.RSAAlgorithm,
    }[algorithm]
    jwk: dict[str, Any] = json.loads(jwk_class.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


def _token(private: Any, algorithm: str, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": ANALYST, "iat": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, private, algorithm=algorithm, headers={"kid": kid})


def _jwt_settings(tmp_path: Path, algorithm: str = "EdDSA") -> tuple[Settings, Any]:
    private = _signing_key(algorithm)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [_jwk(private, algorithm, "k1")]}))
    settings, _ = gate_settings(
        tmp_path,
        api_keys_file=None,
        jwks_file=tmp_path / "jwks.json",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    return settings, private


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_decide_without_credential_is_401_with_a_challenge(tmp_path: Path) -> None:
    """No credential: 401 `unauthorized` with a `WWW-Authenticate: Bearer` challenge."""
    settings, _ = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act())
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_api_key_works_as_x_api_key_and_as_bearer(tmp_path: Path) -> None:
    """The same API key authenticates in `X-API-Key` and in `Authorization: Bearer`."""
    settings, headers = gate_settings(tmp_path)
    key = headers["runtime"]["X-API-Key"]
    with TestClient(create_app(settings)) as client:
        by_header = client.post("/v1/decide", json=act(), headers={"X-API-Key": key})
        by_bearer = client.post("/v1/decide", json=act(), headers=_bearer(key))
    assert (by_header.status_code, by_bearer.status_code) == (200, 200)
    assert by_header.json()["decision"] == "allow"


def test_unknown_api_key_is_401(tmp_path: Path) -> None:
    """A key that is not in the keys file is refused and counted."""
    settings, _ = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers={"X-API-Key": "mgk_forged"})
        metrics = client.get("/metrics").text
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    assert 'maestro_refused_callers_total{code="unauthorized"} 1.0' in metrics


def test_keys_file_stores_only_hashes(tmp_path: Path) -> None:
    """The keys file holds SHA-256 hashes, never the keys themselves."""
    _, headers = gate_settings(tmp_path)
    stored = (tmp_path / "keys.json").read_text()
    key = headers["alice"]["X-API-Key"]
    assert key not in stored
    assert key_hash(key) in stored


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_jwt_from_the_configured_issuer_authenticates(tmp_path: Path, algorithm: str) -> None:
    """A token signed by a JWKS key, with the right issuer and audience, is accepted."""
    settings, private = _jwt_settings(tmp_path, algorithm)
    token = _token(private, algorithm, roles=["agent"])
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers=_bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "allow"


def test_jwt_agent_is_bound_to_its_sub_when_it_lists_no_subjects(tmp_path: Path) -> None:
    """An agent token without a `subjects` claim may only ask for the agent id in `sub`."""
    settings, private = _jwt_settings(tmp_path)
    token = _token(private, "EdDSA", roles=["agent"])
    with TestClient(create_app(settings)) as client:
        own = client.post("/v1/decide", json=act(), headers=_bearer(token))
        other = client.post("/v1/decide", json=act(subject=CODER), headers=_bearer(token))
    assert own.status_code == 200
    assert (other.status_code, other.json()["code"]) == (403, "subject_not_bound")


def test_forged_jwt_is_401(tmp_path: Path) -> None:
    """A token signed by another key under the trusted key id is refused."""
    settings, _ = _jwt_settings(tmp_path)
    forged = _token(ed25519.Ed25519PrivateKey.generate(), "EdDSA", roles=["agent"])
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers=_bearer(forged))
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


def test_expired_jwt_is_401(tmp_path: Path) -> None:
    """A token past its `exp` (beyond the leeway) is refused with a message that says so."""
    settings, private = _jwt_settings(tmp_path)
    old = int(time.time()) - 3600
    token = _token(private, "EdDSA", roles=["agent"], iat=old - 300, exp=old)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers=_bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_jwt_for_another_audience_is_401(tmp_path: Path) -> None:
    """A token minted for another service is refused."""
    settings, private = _jwt_settings(tmp_path)
    token = _token(private, "EdDSA", roles=["agent"], aud="another-service")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers=_bearer(token))
    assert response.status_code == 401
    assert "audience" in response.json()["message"]


def test_jwt_from_another_issuer_is_401(tmp_path: Path) -> None:
    """A token from an issuer other than the configured one is refused."""
    settings, private = _jwt_settings(tmp_path)
    token = _token(private, "EdDSA", roles=["agent"], iss="https://evil.example")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers=_bearer(token))
    assert response.status_code == 401


def test_unsigned_jwt_is_401(tmp_path: Path) -> None:
    """`alg: none` is never accepted."""
    settings, _ = _jwt_settings(tmp_path)
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": ANALYST}, None, algorithm="none")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(), headers=_bearer(token))
    assert response.status_code == 401


def test_agent_asking_for_another_subject_is_403_audited_and_counted(tmp_path: Path) -> None:
    """Impersonation: 403 `subject_not_bound`, an `impersonation_attempt` record, a metric."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(subject=CODER), headers=headers["runtime"])
        metrics = client.get("/metrics").text
    assert (response.status_code, response.json()["code"]) == (403, "subject_not_bound")
    [attempt] = events(settings, "impersonation_attempt")
    assert attempt["subject"] == CODER
    assert attempt["detail"]["principal"] == "runtime"
    assert attempt["detail"]["bound_subjects"] == [ANALYST]
    assert 'maestro_refused_callers_total{code="subject_not_bound"} 1.0' in metrics


def test_policy_sees_the_authenticated_caller(tmp_path: Path) -> None:
    """`input.state.caller` names the principal and the subjects it authenticated as."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        bound = client.post("/v1/decide", json=act(), headers=headers["runtime"]).json()
        unbound = client.post("/v1/decide", json=act(subject=CODER), headers=headers["root"])
    [echo] = bound["obligations"]
    assert echo["params"]["caller"] == {"principal": "runtime", "authenticated_subjects": [ANALYST]}
    [echo] = unbound.json()["obligations"]
    assert echo["params"]["caller"] == {"principal": "root", "authenticated_subjects": [CODER]}


ROLE_TABLE = [
    ("post", "/v1/decide", "alice", 403),
    ("post", "/v1/decide", "auditor", 403),
    ("get", "/v1/approvals", "runtime", 403),
    ("get", "/v1/approvals", "alice", 200),
    ("get", "/v1/approvals", "auditor", 200),
    ("get", "/v1/admin/mode", "alice", 403),
    ("get", "/v1/admin/mode", "admin", 200),
    ("get", "/v1/admin/emergency-stop", "runtime", 403),
    ("get", "/v1/admin/emergency-stop", "admin", 200),
    ("post", "/v1/admin/bundle/reload", "auditor", 403),
    ("post", "/v1/admin/bundle/reload", "admin", 200),
    ("get", "/v1/status", "runtime", 200),
    ("get", "/v1/status", None, 401),
    ("get", "/v1/approvals", None, 401),
    ("get", "/v1/admin/mode", None, 401),
]


def test_roles_gate_every_endpoint(tmp_path: Path) -> None:
    """Each endpoint admits exactly the roles it names; no credential is 401 everywhere."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        seen = []
        for method, path, who, _ in ROLE_TABLE:
            kwargs: dict[str, Any] = {"headers": headers[who] if who else {}}
            if path == "/v1/decide":
                kwargs["json"] = act()
            seen.append(client.request(method, path, **kwargs).status_code)
    assert seen == [status for *_, status in ROLE_TABLE]


def test_health_ready_and_metrics_need_no_credential(tmp_path: Path) -> None:
    """The probes and the scrape endpoint stay open."""
    settings, _ = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        codes = [client.get(p).status_code for p in ("/health", "/ready", "/metrics")]
    assert codes == [200, 200, 200]


def test_embedded_profile_creates_a_development_key_and_says_how_to_use_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without configured credentials, the embedded profile writes an owner-only dev key."""
    settings, _ = gate_settings(tmp_path, api_keys_file=None)
    with TestClient(create_app(settings)) as client:
        key = (tmp_path / "dev-api-key").read_text().strip()
        response = client.post("/v1/decide", json=act(), headers=_bearer(key))
        admin = client.get("/v1/admin/mode", headers={"X-API-Key": key})
    assert (response.status_code, admin.status_code) == (200, 200)
    assert os.stat(tmp_path / "dev-api-key").st_mode & 0o777 == 0o600
    err = capfd.readouterr().err
    assert "created development API key" in err
    assert "Authorization: Bearer $(cat" in err


def test_production_profile_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    """`production` needs an API keys file or a JWKS file, and never runs with auth off."""
    settings, _ = gate_settings(tmp_path, profile="production", api_keys_file=None)
    with pytest.raises(ValueError, match="production needs credentials"):
        build(settings)
    settings, _ = gate_settings(tmp_path, profile="production", auth="off")
    with pytest.raises(ValueError, match="refuses MAESTRO_GATE_AUTH=off"):
        build(settings)


def test_auth_off_admits_anonymous_callers_in_the_embedded_profile(tmp_path: Path) -> None:
    """`MAESTRO_GATE_AUTH=off` (embedded only) decides without any credential."""
    settings, _ = gate_settings(tmp_path, auth="off")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/decide", json=act(subject=CODER))
    assert response.status_code == 200
    assert response.json()["obligations"][0]["params"]["caller"]["principal"] == "anonymous"


def test_cli_add_key_prints_the_key_once_and_stores_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maestro-gate auth add-key` prints a working key and keeps only its SHA-256."""
    path = tmp_path / "keys.json"
    args = ["--name", "ops", "--roles", "agent,approver", "--subject", ANALYST]
    code = main(["auth", "add-key", *args, "--file", str(path)])
    key = capsys.readouterr().out.strip()
    assert code == 0
    assert key.startswith("mgk_")
    assert key not in path.read_text()
    caller = KeyRing(read_keys(path)).caller(key)
    assert caller is not None
    assert (caller.principal, caller.roles, caller.subjects) == (
        "ops",
        frozenset({"agent", "approver"}),
        frozenset({ANALYST}),
    )
    again = ["auth", "add-key", "--name", "ops", "--roles", "auditor", "--file", str(path)]
    assert main(again) == 1
