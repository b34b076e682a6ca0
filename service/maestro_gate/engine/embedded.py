"""The embedded engine: regopy (rego-cpp) evaluating a compiled bundle through its VM.

Decisions run on native worker threads that never take the GIL (engine/_pool.c, seen from the
loop through engine/pool.py). A load compiles and checks the new bundle here, compiles a copy for
each thread (rego-cpp interpreters cannot be shared), and only then swaps it in whole: no
decision ever sees a half-loaded bundle or waits for a compile. A deadline on the event loop
holds while a worker is busy; a late result is discarded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import regopy
import structlog

from maestro_gate.core.decision.ports import BundleInfo, EngineResult
from maestro_gate.core.errors import BundleError, EngineTimeout, NotReady
from maestro_gate.engine import _rego, patches
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, Bundle, activation_info, check_builtins
from maestro_gate.engine.native_eval import first_line
from maestro_gate.engine.pool import WorkerPool


@dataclass(frozen=True)
class _Active:
    bundle: Bundle
    info: BundleInfo
    sources: _rego.Generation


def _prepare(native: _rego.Pool, sources: _rego.Generation) -> None:
    try:
        native.prepare(sources)
    except (ValueError, RuntimeError) as exc:  # it compiled at load: only out of memory
        structlog.get_logger("maestro_gate.engine").warning("workers_not_prepared", error=str(exc))


def sources_of(bundle: Bundle) -> _rego.Generation:
    """What each worker thread compiles: the modules, the data as JSON and the entrypoint."""
    return _rego.Generation(
        list(bundle.modules.items()), json.dumps(bundle.data), DECISION_ENTRYPOINT
    )


def compile_bundle(
    bundle: Bundle, entrypoints: Sequence[str] = (DECISION_ENTRYPOINT,)
) -> tuple[regopy.Interpreter, Any]:
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
        program = rego.build(None, list(entrypoints))
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
        self._native = _rego.Pool(workers)
        self._pool: WorkerPool | None = None
        self._active: _Active | None = None

    def load(self, bundle: Bundle) -> BundleInfo:
        """Compile, check and activate a bundle; the active one stays if this raises.

        Blocks while every worker's copy compiles (about 100 ms each); call it off the loop.
        """
        compile_bundle(bundle)
        sources = sources_of(bundle)
        try:
            self._native.prepare(sources)
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        info = activation_info(bundle)
        self._active = _Active(bundle=bundle, info=info, sources=sources)  # one swap
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
                self._replace(pool, active)
            raise
        return EngineResult(value=value, bundle=active.info)

    def close(self) -> None:
        """Stop the workers without waiting for runaway evaluations."""
        if self._pool is not None:
            self._pool.detach()
            self._pool = None
        self._native.close()

    def _pool_for(self, loop: asyncio.AbstractEventLoop) -> WorkerPool:
        """The workers reporting to this loop (a new loop, as in tests, takes them over)."""
        pool = self._pool
        if pool is None or pool.loop is not loop or pool.native is not self._native:
            if pool is not None:
                pool.detach()
            pool = self._pool = WorkerPool(loop, self._native)
        return pool

    def _replace(self, held: WorkerPool, active: _Active) -> None:
        """Every thread is held past a deadline: new threads take the next decisions."""
        native = self._native = _rego.Pool(self._size)
        self._pool = WorkerPool(held.loop, native)
        held.close()
        # Their copies compile off the loop; a decision that comes first compiles its own.
        held.loop.run_in_executor(None, _prepare, native, active.sources)
