"""A credentials file loaded at start and loaded again whenever it changes, without a restart.

The API keys file and the JWKS file are read once at start, where anything wrong stops the
service. After that, at most once every `interval_s` seconds (0: at every use), the file's
identity (inode, size, modification time) is compared with the last one loaded; a changed file
is loaded again, so `maestro-gate auth add-key` and `auth revoke-key`, or a rotated JWKS, take
effect within a second. A file that no longer loads (missing, malformed, no usable key) leaves
the previous credentials in force and is logged once per change; it is tried again at the next
check, since a writer may not have finished.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

T = TypeVar("T")
Identity = tuple[int, int, int] | None
_NONE_REFUSED = object()


class Watched(Generic[T]):
    """The value `load` makes of a file, made again when the file changes."""

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        *,
        interval_s: float = 1.0,
        what: str = "credentials",
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
    ) -> None:
        """Load `path` now; `load`'s ValueError passes through (a start-up refusal)."""
        self.path = path
        self._load = load
        self._interval_s = interval_s
        self._what = what
        self._clock = clock
        self._log = log or structlog.get_logger("maestro_gate.auth")
        self._loaded = _identity(path)
        self._refused: Identity | object = _NONE_REFUSED
        self._value = load(path)
        self._checked = clock()

    def current(self) -> T:
        """The value of the file as last loaded, after loading it again if it has changed."""
        now = self._clock()
        if now - self._checked >= self._interval_s:
            self._checked = now
            self._check()
        return self._value

    def _check(self) -> None:
        identity = _identity(self.path)
        if identity == self._loaded:
            return
        try:
            value = self._load(self.path)
        except ValueError as exc:
            if identity != self._refused:  # once per change, not at every check
                self._refused = identity
                self._log.error(
                    "credentials_reload_failed",
                    credentials=self._what,
                    file=str(self.path),
                    error=str(exc),
                    detail="the previously loaded credentials stay in force",
                )
            return
        self._value, self._loaded, self._refused = value, identity, _NONE_REFUSED
        self._log.info("credentials_reloaded", credentials=self._what, file=str(self.path))


def _identity(path: Path) -> Identity:
    """What changes when a file is replaced or rewritten: inode, size, modification time."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
