"""JWT bearer tokens: EdDSA, ES256 or RS256, verified against a JWKS file.

Checked: the signature (key chosen by `kid`, or the only key), `iss`, `aud`, `exp` (required)
and `nbf` when present, with a small leeway. The principal is `sub`. Roles come from the
`roles` claim (a list, or a space-separated string); bound agent ids from the `subjects` claim
(a list), or, when that claim is absent and the token carries the `agent` role, from `sub`
itself when it is a URI (a SPIFFE JWT-SVID names its workload there). Claim names are settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt

from maestro_gate.core.decision.callers import ROLES, Caller
from maestro_gate.core.errors import Unauthenticated

ALGORITHMS = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}


class JwtVerifier:
    """Verifies bearer tokens and turns their claims into a Caller."""

    def __init__(
        self,
        jwks: dict[str, Any],
        *,
        issuer: str,
        audience: str,
        roles_claim: str = "roles",
        subjects_claim: str = "subjects",
        leeway_s: int = 30,
    ) -> None:
        self._keys: list[jwt.PyJWK] = []
        listed = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(listed, list):
            raise ValueError('a JWKS is a JSON object with a "keys" list')
        for i, raw in enumerate(listed):
            if not isinstance(raw, dict):
                raise ValueError(f"JWKS key {i} is not a JSON object")
            if raw.get("kty") not in ALGORITHMS.values() or raw.get("use", "sig") != "sig":
                continue
            if raw.get("kty") == "EC" and raw.get("crv") != "P-256":
                continue
            try:
                self._keys.append(jwt.PyJWK.from_dict(raw, algorithm=_algorithm_for(raw)))
            except jwt.PyJWTError as exc:
                raise ValueError(f"JWKS key {i} ({raw.get('kid', 'no kid')}): {exc}") from None
        if not self._keys:
            raise ValueError("the JWKS has no EdDSA, ES256 or RS256 key")
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.subjects_claim = subjects_claim
        self.leeway_s = leeway_s

    @property
    def key_ids(self) -> frozenset[str]:
        """The `kid` of each key that has one."""
        return frozenset(k.key_id for k in self._keys if k.key_id)

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> JwtVerifier:
        """A verifier for the keys in a JWKS JSON file."""
        try:
            jwks = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read JWKS file {path}: {exc}") from exc
        return cls(jwks, **options)

    def caller(self, token: str) -> Caller:
        """The caller a valid token names; raise Unauthenticated otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a valid JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"JWT algorithm {algorithm!r} is not accepted")
        key = self._key(header.get("kid"), algorithm)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the bearer token is from an untrusted issuer") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is invalid: {exc}") from None
        return self._caller(claims)

    def _key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        kty = ALGORITHMS[algorithm]
        candidates = [k for k in self._keys if k.key_type == kty]
        if kid is not None:
            candidates = [k for k in candidates if k.key_id == kid]
        if len(candidates) != 1:
            raise Unauthenticated("no single signing key matches the token's kid and algorithm")
        return candidates[0]

    def _caller(self, claims: dict[str, Any]) -> Caller:
        subject = str(claims["sub"])
        raw_roles = claims.get(self.roles_claim, [])
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        roles = frozenset(r for r in raw_roles if isinstance(r, str) and r in ROLES)
        raw_subjects = claims.get(self.subjects_claim)
        if isinstance(raw_subjects, list):
            subjects = frozenset(str(s) for s in raw_subjects)
        elif "agent" in roles and "://" in subject:
            subjects = frozenset({subject})
        else:
            subjects = frozenset()
        return Caller(principal=subject, roles=roles, subjects=subjects, method="jwt")


def _algorithm_for(jwk: dict[str, Any]) -> str:
    kty = jwk.get("kty")
    if kty == "OKP":
        return "EdDSA"
    if kty == "EC":
        return "ES256"
    return "RS256"
