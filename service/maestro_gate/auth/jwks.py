"""JWT verification keys from a JWKS URL, as an OIDC provider publishes them (`jwks_uri`).

The set is fetched with PyJWT's `PyJWKClient` (its HTTP fetch, with a timeout) and kept: it is
fetched again in the background when older than `refresh_s` (the old keys serve meanwhile), and
at once when a token names a `kid` the set does not hold (a rotation), at most once every
`min_refetch_s`. A fetch that fails, times out or returns
something that is not a usable JWKS changes nothing: the last good keys stay in force and the
failure is logged. Before any fetch has succeeded no JWT is accepted (401); API keys still are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import structlog

from maestro_gate.auth.tokens import JwtVerifier
from maestro_gate.core.decision.callers import Caller
from maestro_gate.core.errors import Unauthenticated


class JwksUrl:
    """A JWT verifier whose keys come from a URL, cached, refreshed, kept through outages."""

    def __init__(
        self,
        url: str,
        build: Callable[[dict[str, Any]], JwtVerifier],
        *,
        timeout_s: float = 2.0,
        refresh_s: float = 300.0,
        min_refetch_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
    ) -> None:
        self.url = url
        self._fetcher = jwt.PyJWKClient(
            url, cache_jwk_set=False, cache_keys=False, timeout=timeout_s
        )
        self._build = build
        self._refresh_s = refresh_s
        self._min_refetch_s = min_refetch_s
        self._clock = clock
        self._log = log or structlog.get_logger("maestro_gate.auth")
        self._lock = threading.Lock()
        self._verifier: JwtVerifier | None = None
        self._fetched_at = -float("inf")
        self._tried_at = -float("inf")
        self._refreshing = False
        self.fetches = 0
        self.failures = 0

    def caller(self, token: str) -> Caller:
        """The caller a valid token names; Unauthenticated otherwise (no keys yet included).

        Keys past `refresh_s` are still used while a thread fetches new ones, so a slow or
        down URL never holds up a request; only a `kid` the keys lack waits for a fetch.
        """
        verifier = self._verifier
        if verifier is not None and self._clock() - self._fetched_at >= self._refresh_s:
            self._refresh_in_background()
        kid = _kid(token)
        if kid is not None and (verifier is None or kid not in verifier.key_ids):
            self.refresh(rate_limited=True)
            verifier = self._verifier
        if verifier is None:
            raise Unauthenticated("no JWT verification keys yet: the JWKS URL has not answered")
        return verifier.caller(token)

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="jwks-refresh", daemon=True).start()

    def refresh(self, *, rate_limited: bool = False) -> bool:
        """Fetch the set again; True when new keys are in force. Failures keep the old keys.

        `rate_limited` (a fetch for an unknown `kid`) is skipped when the last such fetch was
        less than `min_refetch_s` ago, so made-up kids cannot make the gate hammer the URL.
        """
        with self._lock:
            now = self._clock()
            if rate_limited:
                if now - self._tried_at < self._min_refetch_s:
                    return False
                self._tried_at = now
            try:
                verifier = self._build(self._fetcher.fetch_data())
            except (jwt.PyJWKClientError, ValueError, TypeError) as exc:
                self.failures += 1
                self._fetched_at = now  # a down URL is retried after refresh_s, not per request
                self._log.error(
                    "jwks_fetch_failed",
                    url=self.url,
                    error=str(exc),
                    kept=self._verifier is not None,
                )
                return False
            self._verifier = verifier
            self._fetched_at = now
            self.fetches += 1
            return True


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None
