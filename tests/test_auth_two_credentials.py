"""Two credentials on one request must both be valid and name the same caller, or it is 401."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from tests.auth_support import ANALYST, act, gate_settings

ISSUER = "https://idp.corp.example"
AUDIENCE = "maestro-gate"


def _headers(
    keys: dict[str, dict[str, str]], api_key: str | None, bearer: str | None
) -> dict[str, str]:
    """`X-API-Key` from principal `api_key` (or a literal), `Authorization` from `bearer`."""
    headers: dict[str, str] = {}
    if api_key is not None:
        headers["X-API-Key"] = keys[api_key]["X-API-Key"] if api_key in keys else api_key
    if bearer is not None:
        headers["Authorization"] = (
            f"Bearer {keys[bearer]['X-API-Key']}" if bearer in keys else bearer
        )
    return headers


CASES = [
    ("same key twice", "runtime", "runtime", 200),
    ("two principals", "runtime", "coder-runtime", 401),
    ("valid key, forged bearer", "runtime", "Bearer mgk_forged", 401),
    ("forged key, valid bearer", "mgk_forged", "runtime", 401),
    ("valid key, non-bearer scheme", "runtime", "Basic cnVudGltZTpwdw==", 401),
    ("valid key, empty bearer", "runtime", "Bearer", 401),
    ("valid bearer alone", None, "runtime", 200),
    ("valid key alone", "runtime", None, 200),
]


@pytest.mark.parametrize(
    ("api_key", "bearer", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("path", ["/v1/decide", "/v1/approvals/none"])
def test_credentials_that_disagree_are_401_on_every_door(
    tmp_path: Path, path: str, api_key: str | None, bearer: str | None, status: int
) -> None:
    """Both the decide fast path and the routed endpoints refuse disagreeing credentials."""
    settings, keys = gate_settings(tmp_path)
    headers = _headers(keys, api_key, bearer)
    with TestClient(create_app(settings)) as client:
        if path == "/v1/decide":
            response = client.post(path, json=act(), headers=headers)
        else:
            response = client.get(path, headers=headers)
        records = client.get("/v1/status", headers=keys["auditor"]).json()["audit"]["records"]
    expected = status if path == "/v1/decide" or status == 401 else 404
    assert response.status_code == expected, response.text
    if status == 401:
        assert response.json()["code"] == "unauthorized"
        assert "www-authenticate" in response.headers
        assert records == 0


def test_a_jwt_and_a_key_naming_different_callers_are_401(tmp_path: Path) -> None:
    """A valid JWT for the analyst beside a valid key of another principal is refused."""
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    settings, keys = gate_settings(
        tmp_path, jwks_file=tmp_path / "jwks.json", jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": ANALYST, "iat": now, "exp": now + 300}
    token = jwt.encode({**claims, "roles": ["agent"]}, private, algorithm="EdDSA",
                       headers={"kid": "k1"})  # fmt: skip
    bearer = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        alone = client.post("/v1/decide", json=act(), headers=bearer)
        both = client.post("/v1/decide", json=act(), headers={**bearer, **keys["runtime"]})
    assert alone.status_code == 200, alone.text
    assert (both.status_code, both.json()["code"]) == (401, "unauthorized")
