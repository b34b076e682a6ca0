"""JWT keys from a JWKS URL: a real JWKS server on loopback that rotates its keys, goes down
and answers slowly; and the gate itself deciding for a token whose key it fetched."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from maestro_gate.auth.jwks import JwksUrl
from maestro_gate.auth.tokens import JwtVerifier
from maestro_gate.client import GateClient
from maestro_gate.core.errors import Unauthenticated
from tests.auth_support import ANALYST, act, gate_settings
from tests.client_support import Answer, misbehaving
from tests.test_auth import AUDIENCE, ISSUER, _jwk, _token
from tests.test_hot_reload import serving

ROOT = ["agent"]


class Issuer:
    """An identity provider's JWKS endpoint: its current keys, or an outage, or slowness."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.down = False
        self.delay_s = 0.0

    def rotate(self, kid: str) -> Any:
        """A new signing key `kid`, published alone (the old one withdrawn)."""
        private = ed25519.Ed25519PrivateKey.generate()
        self.keys = {kid: private}
        return private

    def respond(self, *_: Any) -> Answer:
        """The JWKS document, a 503, or the document late."""
        if self.down:
            return Answer(503, b"down")
        body = {"keys": [_jwk(k, "EdDSA", kid) for kid, k in self.keys.items()]}
        return replace(Answer.json(200, body), delay_s=self.delay_s)


def source(url: str, **options: Any) -> JwksUrl:
    """A JWKS URL source for the test issuer and audience."""
    options.setdefault("min_refetch_s", 0)
    return JwksUrl(url, lambda jwks: JwtVerifier(jwks, issuer=ISSUER, audience=AUDIENCE), **options)


def test_a_rotated_key_is_fetched_at_once_for_its_unknown_kid() -> None:
    """Tokens of the first key verify from the cache; after a rotation a token with the new kid
    makes one fetch and verifies, long before the refresh interval."""
    issuer = Issuer()
    first = issuer.rotate("k1")
    with misbehaving(issuer.respond) as idp:
        keys = source(idp.url, refresh_s=3600)
        for _ in range(3):
            assert keys.caller(_token(first, "EdDSA", "k1", roles=ROOT)).principal == ANALYST
        assert (keys.fetches, len(idp.received)) == (1, 1)
        second = issuer.rotate("k2")
        assert keys.caller(_token(second, "EdDSA", "k2", roles=ROOT)).principal == ANALYST
        assert keys.fetches == 2
        with pytest.raises(Unauthenticated):  # the withdrawn key no longer verifies
            keys.caller(_token(first, "EdDSA", "k1", roles=ROOT))


def test_the_last_good_keys_stay_while_the_url_is_down() -> None:
    """An outage, then a slow answer past the timeout: the keys fetched before still verify."""
    issuer = Issuer()
    private = issuer.rotate("k1")
    token = _token(private, "EdDSA", "k1")
    with misbehaving(issuer.respond) as idp:
        keys = source(idp.url, refresh_s=1, timeout_s=0.3)
        assert keys.caller(token).principal == ANALYST
        issuer.down = True
        assert not keys.refresh()
        assert keys.caller(token).principal == ANALYST
        issuer.down, issuer.delay_s = False, 2.0
        started = time.monotonic()
        assert not keys.refresh()
        assert time.monotonic() - started < 1.5
        assert keys.caller(token).principal == ANALYST
    assert keys.failures == 2


def test_a_due_refresh_runs_in_the_background_and_never_holds_a_request() -> None:
    """Keys past refresh_s with a slow URL: the request is answered at once with the old keys,
    and the new set arrives when the fetch completes."""
    issuer = Issuer()
    private = issuer.rotate("k1")
    token = _token(private, "EdDSA", "k1")
    with misbehaving(issuer.respond) as idp:
        keys = source(idp.url, refresh_s=0.2, timeout_s=3)
        assert keys.caller(token).principal == ANALYST
        issuer.delay_s = 1.0
        time.sleep(0.3)
        started = time.monotonic()
        assert keys.caller(token).principal == ANALYST
        assert time.monotonic() - started < 0.5
        deadline = time.monotonic() + 5
        while keys.fetches < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert keys.fetches == 2


def test_no_jwt_is_accepted_before_the_first_fetch_succeeds() -> None:
    """The URL is down from the start: 401; once it answers, the next token fetches and passes."""
    issuer = Issuer()
    private = issuer.rotate("k1")
    issuer.down = True
    with misbehaving(issuer.respond) as idp:
        keys = source(idp.url)
        with pytest.raises(Unauthenticated, match="JWKS URL"):
            keys.caller(_token(private, "EdDSA", "k1"))
        issuer.down = False
        assert keys.caller(_token(private, "EdDSA", "k1")).principal == ANALYST


def test_unknown_kids_do_not_hammer_the_url() -> None:
    """Tokens with made-up kids fetch again at most once per min_refetch_s."""
    issuer = Issuer()
    issuer.rotate("k1")
    forger = ed25519.Ed25519PrivateKey.generate()
    with misbehaving(issuer.respond) as idp:
        keys = source(idp.url, min_refetch_s=60)
        assert keys.refresh()  # as the gate does at start
        for i in range(5):
            with pytest.raises(Unauthenticated):
                keys.caller(_token(forger, "EdDSA", f"forged-{i}"))
        assert len(idp.received) == 2  # the first fetch, and one for the first unknown kid


def test_the_gate_verifies_bearer_tokens_with_keys_from_the_url(tmp_path: Path) -> None:
    """MAESTRO_GATE_JWKS_URL: the served gate decides for a JWT whose key the IdP rotated in."""
    issuer = Issuer()
    issuer.rotate("k1")
    with misbehaving(issuer.respond) as idp:
        settings, _ = gate_settings(
            tmp_path, api_keys_file=None, jwks_url=idp.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE
        )
        with serving(settings) as url:
            rotated = issuer.rotate("k2")
            token = _token(rotated, "EdDSA", "k2", roles=ROOT)
            with GateClient(url, token=token) as client:
                assert client.decide(act()).decision == "allow"
            with GateClient(url, token=token + "x") as forged:
                from maestro_gate.client.exceptions import Unauthorized

                with pytest.raises(Unauthorized):
                    forged.decide(act())
