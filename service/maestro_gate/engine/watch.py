"""Hot reload: an asyncio task that polls a bundle for changes and asks for a reload.

The watcher never activates anything itself: it calls the reload it is given (the Gate's, which
reads, verifies, checks and compiles before it swaps) and keeps polling whatever the outcome. A
change must look the same on two consecutive polls before it triggers a reload, so a deploy that
writes files one by one is not picked up half-written (an atomic rename is still the safe way).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from maestro_gate.core.errors import GateError
from maestro_gate.engine.bundle import bundle_files
from maestro_gate.periodic import Periodic


def fingerprint(*paths: Path | None) -> str:
    """A digest of `paths`: a file's bytes, or every file the bundle loader reads in a directory."""
    h = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        h.update(f"{path}\0".encode())
        try:
            if path.is_file():
                h.update(path.read_bytes())
                continue
            files, signatures = bundle_files(path)
        except (GateError, OSError) as exc:
            h.update(f"unreadable: {exc}".encode())
            continue
        for name in sorted(files):
            h.update(f"{name}\0{len(files[name])}\0".encode())
            h.update(files[name])
        h.update(signatures or b"<unsigned>")
    return h.hexdigest()


class BundleWatcher:
    """Polls `paths` every `interval_s` seconds and awaits `reload()` after a settled change."""

    def __init__(
        self,
        paths: list[Path | None],
        interval_s: float,
        reload: Callable[[], Awaitable[Any]],
    ) -> None:
        self._paths = paths
        self._reload = reload
        self._log = structlog.get_logger("maestro_gate.watch")
        self._polling = Periodic("maestro-bundle-watcher", interval_s, self._poll, self._failed)
        self._seen = ""
        self._pending: str | None = None
        self.checks = 0
        self.reloads = 0

    def start(self, seen: str) -> None:
        """Start polling; `seen` is the fingerprint of what is active now."""
        self._seen = seen
        self._polling.start()

    async def stop(self) -> None:
        """Cancel the polling task and wait for it to end."""
        await self._polling.stop()

    async def _poll(self) -> None:
        current = await asyncio.to_thread(fingerprint, *self._paths)
        self.checks += 1
        if current == self._seen:
            self._pending = None
            return
        if current != self._pending:
            self._pending = current
            return
        self._seen, self._pending = current, None
        self.reloads += 1
        try:
            await self._reload()
        except GateError as exc:
            self._log.warning("bundle_reload_refused", error=exc.message)

    def _failed(self, exc: Exception) -> None:
        self._log.error("bundle_reload_failed", error=f"{type(exc).__name__}: {exc}")
