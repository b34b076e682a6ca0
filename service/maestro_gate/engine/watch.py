"""Hot reload: an asyncio task that polls a bundle for changes and asks for a reload.

The watcher never activates anything itself: it calls the reload it is given (the Gate's, which
reads, verifies, checks and compiles before it swaps) and keeps polling whatever the outcome. A
change must look the same on two consecutive polls before it triggers a reload, so a deploy that
writes files one by one is not picked up half-written (an atomic rename is still the safe way).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from maestro_gate.core.errors import GateError
from maestro_gate.engine.bundle import bundle_files


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
        self._interval_s = interval_s
        self._reload = reload
        self._task: asyncio.Task[None] | None = None
        self._log = structlog.get_logger("maestro_gate.watch")
        self.checks = 0
        self.reloads = 0

    def start(self, seen: str | None = None) -> None:
        """Start polling; `seen` is the fingerprint of what is active (default: what is there)."""
        self._task = asyncio.create_task(self._run(seen), name="maestro-bundle-watcher")

    async def stop(self) -> None:
        """Cancel the polling task and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, seen: str | None) -> None:
        if seen is None:
            seen = await asyncio.to_thread(fingerprint, *self._paths)
        pending: str | None = None
        while True:
            await asyncio.sleep(self._interval_s)
            current = await asyncio.to_thread(fingerprint, *self._paths)
            self.checks += 1
            if current == seen:
                pending = None
                continue
            if current != pending:
                pending = current
                continue
            seen, pending = current, None
            self.reloads += 1
            try:
                await self._reload()
            except GateError as exc:
                self._log.warning("bundle_reload_refused", error=exc.message)
            except Exception:
                self._log.exception("bundle_reload_failed")
