"""The embedded engine: regopy (rego-cpp) evaluating a compiled bundle through its VM.

Decisions run on native worker threads that never take the GIL (engine/_pool.c, seen from the
loop through engine/pool.py). Each thread owns an interpreter compiled from the active bundle's
sources the first time it meets them; a reload compiles and checks the new bundle here first and
swaps it in whole, so no decision ever sees a half-loaded bundle. A deadline on the event loop
holds while a worker is busy; a late result is discarded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import regopy

from maestro_gate.core.errors import BundleError, EngineTimeout, NotReady
from maestro_gate.core.ports import BundleInfo, EngineResult
from maestro_gate.engine import _rego, patches
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, Bundle, check_builtins
from maestro_gate.engine.pool import WorkerPool
from maestro_gate.engine.vm import first_line


@dataclass(frozen=True)
class _Active:
    bundle: Bundle
    info: BundleInfo
    sources: _rego.Generation


def compile_bundle(bundle: Bundle) -> tuple[regopy.Interpreter, Any]:
    """Compile a bundle on a fresh interpreter with strict built-in errors; raise BundleError."""
    rego = regopy.Interpreter()
    rego.log_level = regopy.LogLevel.NONE
    rego.strict_built_in_errors = True
    check_builtins(bundle, rego.is_builtin)
    for path, source in bundle.modules.items():
        try:
            rego.add_module(path, source)
        except regopy.RegoError as exc:
            raise BundleError(f"{path} does not compile: {first_line(str(exc))}") from exc
    try:
        rego.add_data(bundle.data)
        program = rego.build(None, [DECISION_ENTRYPOINT])
    except regopy.RegoError as exc:
        raise BundleError(f"bundle does not compile: {first_line(str(exc))}") from exc
    if not program.ok():
        raise BundleError("bundle does not compile")
    patches.forget()  # the new bundle may sit where a freed one was: verify it on first use
    return rego, program


class EmbeddedEngine:
    """PolicyEngine running the bundle in process on a small pool of native worker threads.

    rego-cpp cannot be interrupted, so an evaluation past its deadline keeps its thread until it
    ends. When every thread of the pool is held that way, new evaluations go to a fresh pool:
    the gate keeps deciding while the overrunning ones finish and their threads end.
    """

    name = "embedded"

    def __init__(self, workers: int = 2) -> None:
        self._size = workers
        self._pool: WorkerPool | None = None
        self._active: _Active | None = None
        self._lock = threading.Lock()

    def load(self, bundle: Bundle) -> BundleInfo:
        """Compile, check and activate a bundle; the active one stays if this raises."""
        compile_bundle(bundle)
        sources = _rego.Generation(
            list(bundle.modules.items()), json.dumps(bundle.data), DECISION_ENTRYPOINT
        )
        info = BundleInfo(
            revision=bundle.revision,
            digest=bundle.digest,
            activated_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        with self._lock:
            self._active = _Active(bundle=bundle, info=info, sources=sources)
        return info

    def active_bundle(self) -> BundleInfo | None:
        """The bundle decisions are made with now."""
        active = self._active
        return active.info if active else None

    async def ready(self) -> bool:
        """True when a bundle is active."""
        return self._active is not None

    async def evaluate(self, document: dict[str, Any], timeout_s: float) -> EngineResult:
        """Evaluate `data.maestro.decision.result` within `timeout_s` seconds."""
        active = self._active
        if active is None:
            raise NotReady("no policy bundle is active")
        pool = self._pool_for(asyncio.get_running_loop())
        try:
            value = await pool.evaluate(active.sources, document, timeout_s)
        except EngineTimeout:
            if pool.overrunning >= pool.threads and pool is self._pool:
                self._pool = WorkerPool(pool.loop, self._size)
                pool.close()
            raise
        return EngineResult(value=value, bundle=active.info)

    def close(self) -> None:
        """Stop the workers without waiting for runaway evaluations."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _pool_for(self, loop: asyncio.AbstractEventLoop) -> WorkerPool:
        """The pool reporting to this loop (a new loop, as in tests, gets a new pool)."""
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:
                pool.close()
            pool = self._pool = WorkerPool(loop, self._size)
        return pool
