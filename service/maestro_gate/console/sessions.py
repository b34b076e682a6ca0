"""Console sessions: a signed-in credential behind an opaque cookie, with its CSRF token.

A session keeps the credential the reviewer signed in with (an API key or a JWT) in this
process's memory only, never in the cookie, and authenticates it again on every request, so a
revoked key, a rotated keys file or an expired JWT ends the session at once. The cookie holds a
random id; the store is keyed by its SHA-256, so the ids a request may present are never kept.
Sessions end after `IDLE_S` without use, after `LIFETIME_S` in all, and on sign-out. They live
in one process: behind several replicas a reviewer signs in to each (or the balancer is sticky).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "mg_console"
LOGIN_COOKIE = "mg_console_login"
IDLE_S = 30 * 60
LIFETIME_S = 8 * 60 * 60
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """One signed-in reviewer: the credential, its CSRF token and its clock."""

    credential: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def expired(self, now: float) -> bool:
        """True once idle for IDLE_S or alive for LIFETIME_S."""
        return now - self.seen > IDLE_S or now - self.created > LIFETIME_S

    def csrf_matches(self, sent: str | None) -> bool:
        """True when `sent` is this session's CSRF token (compared in constant time)."""
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), str(sent).encode())


class SessionStore:
    """Sessions by the SHA-256 of their cookie value, oldest evicted past MAX_SESSIONS."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._max = max_sessions

    def open(self, credential: str) -> tuple[str, Session]:
        """A new session for `credential`: (cookie value, session)."""
        token = secrets.token_urlsafe(32)
        session = Session(credential)
        self._sessions[_key(token)] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value, touched; None if unknown or expired."""
        if not token:
            return None
        key = _key(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.monotonic()
        if session.expired(now):
            del self._sessions[key]
            return None
        session.seen = now
        self._sessions.move_to_end(key)
        return session

    def close(self, token: str | None) -> None:
        """End the session of a cookie value, if any."""
        if token:
            self._sessions.pop(_key(token), None)

    def __len__(self) -> int:
        return len(self._sessions)


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
