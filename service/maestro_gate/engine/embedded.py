"""The embedded engine: regopy (rego-cpp) evaluating a compiled bundle through its VM.

Each worker thread owns an interpreter compiled from the active bundle; a reload compiles and
checks the new bundle on a fresh interpreter first and swaps it in whole, so no decision ever
sees a half-loaded bundle. regopy calls C through ctypes and releases the GIL, so a deadline
on the event loop holds even while a worker is busy; a late result is discarded.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import regopy

from maestro_gate.core.errors import BundleError, EngineTimeout, NotReady
from maestro_gate.core.ports import BundleInfo, EngineResult
from maestro_gate.engine import patches
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, Bundle, check_builtins
from maestro_gate.engine.vm import evaluate, first_line

_ENTRYPOINT = DECISION_ENTRYPOINT.encode()


@dataclass(frozen=True)
class _Active:
    bundle: Bundle
    info: BundleInfo
    generation: int


@dataclass
class _Compiled:
    rego: regopy.Interpreter
    program: Any
    generation: int


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


@dataclass
class _Workers:
    """A pool and how many of its threads are still busy with evaluations past their deadline."""

    pool: ThreadPoolExecutor
    size: int
    overrunning: int = 0


class EmbeddedEngine:
    """PolicyEngine running the bundle in process on a small pool of worker threads.

    rego-cpp cannot be interrupted, so an evaluation past its deadline keeps its thread until it
    ends. When every thread of the pool is held that way, new evaluations go to a fresh pool:
    the gate keeps deciding while the overrunning ones finish and their threads end.
    """

    name = "embedded"

    def __init__(self, workers: int = 2) -> None:
        self._size = workers
        self._workers = self._new_workers()
        self._local = threading.local()
        self._active: _Active | None = None
        self._lock = threading.Lock()

    def load(self, bundle: Bundle) -> BundleInfo:
        """Compile, check and activate a bundle; the active one stays if this raises."""
        compile_bundle(bundle)
        with self._lock:
            generation = self._active.generation + 1 if self._active else 1
            info = BundleInfo(
                revision=bundle.revision,
                digest=bundle.digest,
                activated_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            )
            self._active = _Active(bundle=bundle, info=info, generation=generation)
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
        workers = self._workers
        running = workers.pool.submit(self._evaluate, active, document)
        try:
            # asyncio.timeout rather than wait_for: no extra task per decision.
            async with asyncio.timeout(timeout_s):
                value = await asyncio.wrap_future(running)
        except TimeoutError:
            if not running.cancelled():
                self._overran(workers, running)
            raise EngineTimeout(
                f"evaluation exceeded its {timeout_s * 1000:.0f} ms deadline"
            ) from None
        return EngineResult(value=value, bundle=active.info)

    def close(self) -> None:
        """Stop the workers without waiting for runaway evaluations."""
        self._workers.pool.shutdown(wait=False, cancel_futures=True)

    def _new_workers(self) -> _Workers:
        pool = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="rego")
        return _Workers(pool=pool, size=self._size)

    def _overran(self, workers: _Workers, running: Future[Any]) -> None:
        with self._lock:
            workers.overrunning += 1
            if workers is self._workers and workers.overrunning >= workers.size:
                self._workers = self._new_workers()
                workers.pool.shutdown(wait=False)
        running.add_done_callback(lambda _: self._settled(workers))

    def _settled(self, workers: _Workers) -> None:
        with self._lock:
            workers.overrunning -= 1

    def _evaluate(self, active: _Active, document: dict[str, Any]) -> Any:
        compiled: _Compiled | None = getattr(self._local, "compiled", None)
        if compiled is None or compiled.generation != active.generation:
            rego, program = compile_bundle(active.bundle)
            compiled = _Compiled(rego=rego, program=program, generation=active.generation)
            self._local.compiled = compiled
        return evaluate(compiled.rego, compiled.program, _ENTRYPOINT, document)
