"""Who is calling: an API key (`X-API-Key`, or `Authorization: Bearer mgk_…`) or a JWT bearer.

`build_authenticator(settings)` applies the profile rules: `production` refuses
`MAESTRO_GATE_AUTH=off` and refuses to start without an API keys file or a JWKS file; the
embedded profile with neither creates a development key (all roles, any subject) under `var/`
on first run and says, on stderr and in the log, how to use it. The keys and JWKS files are
watched (`auth/watched.py`): a change takes effect without a restart.
"""

from __future__ import annotations

import sys
from typing import Any

import structlog

from maestro_gate.auth.jwks import JwksUrl
from maestro_gate.auth.keys import KEY_PREFIX, KeyEntry, KeyRing, dev_key, key_hash, read_keys
from maestro_gate.auth.tokens import JwtVerifier
from maestro_gate.auth.watched import Watched
from maestro_gate.config import Settings
from maestro_gate.core.decision.callers import ANONYMOUS, ANY_SUBJECT, ROLES, Caller
from maestro_gate.core.errors import Unauthenticated

DEV_PRINCIPAL = "dev"


class Authenticator:
    """Turns request credentials into a Caller; raises Unauthenticated when none is valid."""

    def __init__(
        self,
        *,
        keys: KeyRing | Watched[KeyRing] | None = None,
        tokens: JwtVerifier | Watched[JwtVerifier] | JwksUrl | None = None,
        required: bool = True,
    ) -> None:
        self._keys = keys
        self._tokens = tokens
        self.required = required

    @property
    def keys(self) -> KeyRing | None:
        """The API keys in force (a watched keys file as last loaded)."""
        keys = self._keys
        return keys.current() if isinstance(keys, Watched) else keys

    @property
    def tokens(self) -> JwtVerifier | JwksUrl | None:
        """The JWT verifier in force (a watched JWKS file as last loaded, or the JWKS URL's)."""
        tokens = self._tokens
        return tokens.current() if isinstance(tokens, Watched) else tokens

    def authenticate(self, bearer: str | None, api_key: str | None) -> Caller:
        """The caller named by a bearer credential or an `X-API-Key` value, or by both alike.

        Both sent must both be valid and name the same principal with the same roles and
        subjects; otherwise neither is trusted (401), so no credential can ride on another.
        """
        if not self.required:
            return ANONYMOUS
        if api_key and bearer:
            by_key, by_bearer = self._key(api_key), self._bearer(bearer)
            if _identity(by_key) != _identity(by_bearer):
                raise Unauthenticated(
                    "`X-API-Key` and `Authorization` name different callers; send one credential"
                )
            return by_bearer
        if api_key:
            return self._key(api_key)
        if not bearer:
            raise Unauthenticated(
                "a credential is required: `Authorization: Bearer <token or key>` or `X-API-Key`"
            )
        return self._bearer(bearer)

    def _bearer(self, bearer: str) -> Caller:
        tokens = self.tokens
        if bearer.startswith(KEY_PREFIX) or tokens is None:
            return self._key(bearer)
        return tokens.caller(bearer)

    def _key(self, key: str) -> Caller:
        keys = self.keys
        caller = keys.caller(key.strip()) if keys is not None else None
        if caller is None:
            raise Unauthenticated("the API key is not valid")
        return caller


def _identity(caller: Caller) -> tuple[str, frozenset[str], frozenset[str]]:
    return caller.principal, caller.roles, caller.subjects


def build_authenticator(settings: Settings, log: Any = None) -> Authenticator:
    """The authenticator `settings` describe; raise ValueError for a configuration to refuse."""
    log = log or structlog.get_logger("maestro_gate.auth")
    production = settings.profile == "production"
    if settings.auth == "off":
        if production:
            raise ValueError("profile production refuses MAESTRO_GATE_AUTH=off")
        log.warning("authentication_off", detail="every caller is anonymous with every role")
        return Authenticator(required=False)
    keys: KeyRing | Watched[KeyRing] | None = None
    tokens: JwtVerifier | Watched[JwtVerifier] | JwksUrl | None = None
    every = settings.credentials_refresh_s
    if settings.api_keys_file is not None:
        keys = Watched(
            settings.api_keys_file,
            lambda path: KeyRing(read_keys(path)),
            interval_s=every,
            what="api_keys",
            log=log,
        )
    if settings.jwks_file is not None and settings.jwks_url is not None:
        raise ValueError("set MAESTRO_GATE_JWKS_FILE or MAESTRO_GATE_JWKS_URL, not both")
    if settings.jwks_url is not None:
        tokens = _jwks_url(settings, log)
    if settings.jwks_file is not None:
        issuer, audience = settings.jwt_issuer, settings.jwt_audience
        if not issuer or not audience:
            raise ValueError(
                "MAESTRO_GATE_JWKS_FILE needs MAESTRO_GATE_JWT_ISSUER and MAESTRO_GATE_JWT_AUDIENCE"
            )
        tokens = Watched(
            settings.jwks_file,
            lambda path: JwtVerifier.from_file(
                path,
                issuer=issuer,
                audience=audience,
                roles_claim=settings.jwt_roles_claim,
                subjects_claim=settings.jwt_subjects_claim,
                leeway_s=settings.jwt_leeway_s,
            ),
            interval_s=every,
            what="jwks",
            log=log,
        )
    if keys is None and tokens is None:
        if production:
            raise ValueError(
                "profile production needs credentials: set MAESTRO_GATE_API_KEYS_FILE "
                "(see `maestro-gate auth add-key`) or MAESTRO_GATE_JWKS_FILE"
            )
        keys = _dev_ring(settings, log)
    return Authenticator(keys=keys, tokens=tokens)


def _jwks_url(settings: Settings, log: Any) -> JwksUrl:
    """The JWKS URL source, fetched once now (a failure is logged; JWTs wait for the keys)."""
    issuer, audience, url = settings.jwt_issuer, settings.jwt_audience, settings.jwks_url
    if not issuer or not audience or not url:
        raise ValueError(
            "MAESTRO_GATE_JWKS_URL needs MAESTRO_GATE_JWT_ISSUER and MAESTRO_GATE_JWT_AUDIENCE"
        )
    if not url.startswith(("https://", "http://")):
        raise ValueError("MAESTRO_GATE_JWKS_URL must be an http(s) URL")
    source = JwksUrl(
        url,
        lambda jwks: JwtVerifier(
            jwks,
            issuer=issuer,
            audience=audience,
            roles_claim=settings.jwt_roles_claim,
            subjects_claim=settings.jwt_subjects_claim,
            leeway_s=settings.jwt_leeway_s,
        ),
        timeout_s=settings.jwks_timeout_s,
        refresh_s=settings.jwks_refresh_s,
        log=log,
    )
    source.refresh()
    return source


def _dev_ring(settings: Settings, log: Any) -> KeyRing:
    path = settings.dev_key_file
    key, created = dev_key(path)
    entry = KeyEntry(
        name=DEV_PRINCIPAL,
        roles=frozenset(ROLES),
        subjects=frozenset({ANY_SUBJECT}),
        sha256=key_hash(key),
    )
    usage = (
        f'curl -H "Authorization: Bearer $(cat {path})" '
        f'http://{settings.host}:{settings.port}/v1/status   (or -H "X-API-Key: $(cat {path})")'
    )
    log.warning(
        "development_api_key",
        path=str(path),
        created=created,
        roles=list(ROLES),
        usage=usage,
        detail="development credential with every role; the production profile refuses it",
    )
    verb = "created" if created else "using"
    print(f"maestro-gate: {verb} development API key in {path} (all roles)", file=sys.stderr)
    print(f"maestro-gate: {usage}", file=sys.stderr)
    return KeyRing([entry], method="dev_key")
