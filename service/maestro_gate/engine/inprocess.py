"""OPA's own evaluator in process: OPA v1.20's `v1/rego` as a Go c-shared library, through
`opa-golib-python-bindings` (module `opa_bindings`).

Exact OPA semantics, every OPA built-in, and no server: the engine a deployer picks with
`MAESTRO_GATE_ENGINE=opa-inprocess`, and the reference the conformance suite holds the embedded
engine to. The bindings serialise evaluations on one `OpaEngine`, so each worker thread takes an
engine of its own from the active generation; a ctypes call releases the GIL, so the threads
evaluate in parallel. A load compiles one engine per worker and only then swaps the generation
in whole: no decision sees a half-loaded bundle. Go's evaluation cannot be interrupted from
here, so a deadline is held on the event loop and a late result is discarded; when every worker
is held past a deadline, new decisions go to fresh threads (and fresh engines).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.core.decision.ports import BundleInfo, EngineResult
from maestro_gate.core.errors import BundleError, EngineError, EngineTimeout, NotReady
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, Bundle, activation_info

INSTALL_HINT = (
    "MAESTRO_GATE_ENGINE=opa-inprocess needs OPA's engine, opa-golib-python-bindings: "
    "pip install --ignore-requires-python --no-deps --require-hashes "
    "-r requirements/opa-engine.txt (make run and make test do this)"
)
DECISION_DOCUMENT = DECISION_ENTRYPOINT.replace("/", ".")
_UNDEFINED_FUNCTION = re.compile(
    r"(?P<file>[^\s:]+\.rego):(?P<row>\d+): rego_type_error: undefined function (?P<name>[\w.]+)"
)
_LOCATED = re.compile(r"(?P<file>[^\s:]+\.rego):(?P<row>\d+): (?P<message>[^\n]*)")


def opa_engine_class() -> Any:
    """`opa_bindings.OpaEngine`, or BundleError saying how to install it."""
    try:
        from opa_bindings import OpaEngine
    except ImportError:  # an optional install: see requirements/opa-engine.txt
        raise BundleError(INSTALL_HINT) from None
    return OpaEngine


def opa_error() -> type[Exception]:
    """`opa_bindings.OpaError`, the base of every error the bindings raise."""
    opa_engine_class()
    from opa_bindings import OpaError

    return OpaError  # type: ignore[no-any-return]


def compile_opa(modules: dict[str, str], data: dict[str, Any]) -> Any:
    """An `OpaEngine` holding the modules and data, its decision query prepared.

    Raise BundleError naming each module that does not parse or compile, and every call to a
    function OPA does not know (`unsupported_builtin`, with file and row).
    """
    engine = opa_engine_class()()
    error = opa_error()
    try:
        for path, source in sorted(modules.items()):
            try:
                engine.add_policy(path, source)
            except error as exc:
                raise BundleError(f"{path} does not parse: {_message(exc)}") from None
        try:
            engine.add_data(data)
            engine.eval_document(DECISION_DOCUMENT, {})  # prepares (compiles) the query
        except error as exc:
            if getattr(exc, "code", "") in ("prepare_error", "merge_conflict", "invalid_json"):
                raise compile_failure(_message(exc)) from None
            # undefined, or a run-time error on the empty input: the bundle compiled
    except BaseException:
        engine.close()
        raise
    return engine


def compile_failure(message: str) -> BundleError:
    """The BundleError for OPA's compile errors, one `errors` entry per located message."""
    errors: list[dict[str, Any]] = []
    for found in _LOCATED.finditer(message):
        location = {"file": found["file"], "row": int(found["row"])}
        missing = _UNDEFINED_FUNCTION.match(found.group(0))
        if missing:
            errors.append(
                {"code": "unsupported_builtin", "message": missing["name"], "location": location}
            )
        else:
            errors.append(
                {"code": "compile_error", "message": found["message"], "location": location}
            )
    return BundleError(f"bundle does not compile on OPA: {message}", errors=errors or None)


def _message(exc: Exception) -> str:
    text = str(getattr(exc, "message", exc)).strip()
    return text.removeprefix("bundle activation failed: ").strip()


@dataclass
class _Generation:
    """One activated bundle: its identity and a stock of compiled engines, one per thread."""

    bundle: Bundle
    info: BundleInfo
    size: int
    free: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stocked: int = 0
    retired: bool = False

    def evaluate(self, document: dict[str, Any]) -> Any:
        """Evaluate on a free engine (compiling one when every engine is busy); worker thread."""
        try:
            engine = self.free.get_nowait()
        except queue.Empty:
            engine = compile_opa(self.bundle.modules, self.bundle.data)
            with self.lock:
                self.stocked += 1
        try:
            return _decide(engine, document)
        finally:
            self._give_back(engine)

    def _give_back(self, engine: Any) -> None:
        with self.lock:
            keep = not self.retired and self.stocked <= self.size
            if not keep:
                self.stocked -= 1
        if keep:
            self.free.put(engine)
        else:
            engine.close()

    def retire(self) -> None:
        """Close the idle engines now and each busy one when its evaluation ends."""
        with self.lock:
            self.retired = True
        while True:
            try:
                engine = self.free.get_nowait()
            except queue.Empty:
                return
            with self.lock:
                self.stocked -= 1
            engine.close()


def _decide(engine: Any, document: dict[str, Any]) -> Any:
    from opa_bindings import OpaError, OpaUndefinedError

    try:
        return engine.eval_document(DECISION_DOCUMENT, document)
    except OpaUndefinedError:
        raise EngineError("the decision document is undefined for this input") from None
    except OpaError as exc:
        raise EngineError(f"evaluation failed: {' '.join(_message(exc).split())[:500]}") from None


class _Threads:
    """A set of worker threads and how many of them are held past a deadline."""

    def __init__(self, size: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="opa-inprocess")
        self.overrunning = 0


@dataclass
class _Job:
    """One evaluation's place in the accounting: ended, and whether it overran its deadline."""

    threads: _Threads
    ended: bool = False
    overran: bool = False


class InProcessOpaEngine:
    """PolicyEngine running the bundle on OPA's own Go evaluator, in this process."""

    name = "opa-inprocess"

    def __init__(self, workers: int = 2) -> None:
        opa_engine_class()  # fail at start, naming the install, when the bindings are missing
        self._size = workers
        self._threads = _Threads(workers)
        self._lock = threading.Lock()
        self._active: _Generation | None = None

    def load(self, bundle: Bundle) -> BundleInfo:
        """Compile an engine per worker and activate the bundle; the active one stays on error.

        Blocks while the engines compile (about 250 ms each); call it off the loop.
        """
        engines: list[Any] = []
        try:
            for _ in range(self._size):
                engines.append(compile_opa(bundle.modules, bundle.data))
        except BaseException:
            for engine in engines:
                engine.close()
            raise
        info = activation_info(bundle)
        generation = _Generation(bundle=bundle, info=info, size=self._size, stocked=len(engines))
        for engine in engines:
            generation.free.put(engine)
        previous, self._active = self._active, generation  # one swap
        if previous is not None:
            previous.retire()
        return info

    def active_bundle(self) -> BundleInfo | None:
        """The bundle decisions are made with now."""
        active = self._active
        return active.info if active else None

    async def ready(self) -> bool:
        """True when a bundle is active."""
        return self._active is not None

    @property
    def overrunning(self) -> int:
        """Evaluations on the current threads still running past their deadline."""
        return self._threads.overrunning

    async def evaluate(self, document: dict[str, Any], timeout_s: float) -> EngineResult:
        """Evaluate `data.maestro.decision.result` within `timeout_s` seconds."""
        active = self._active
        if active is None:
            raise NotReady("no policy bundle is active")
        job = _Job(self._threads)
        loop = asyncio.get_running_loop()
        try:
            submitted = job.threads.executor.submit(self._run, active, document, job)
        except RuntimeError:  # the threads were shut down between the read and the submit
            raise EngineError("the engine's threads are closed") from None
        try:
            async with asyncio.timeout(timeout_s):
                value = await asyncio.wrap_future(submitted)
        except TimeoutError:
            settled: asyncio.Future[None] = loop.create_future()
            if submitted.cancel():  # still queued: it never runs
                settled.set_result(None)
            else:  # it had started: it holds its thread until it ends
                self._overran(job)
                submitted.add_done_callback(lambda _: _settle(loop, settled))
            raise EngineTimeout(
                f"evaluation exceeded its {timeout_s * 1000:.0f} ms deadline", settled=settled
            ) from None
        return EngineResult(value=value, bundle=active.info)

    def close(self) -> None:
        """Stop the threads without waiting for runaway evaluations; close idle engines."""
        self._threads.executor.shutdown(wait=False, cancel_futures=True)
        active, self._active = self._active, None
        if active is not None:
            active.retire()

    def _run(self, generation: _Generation, document: dict[str, Any], job: _Job) -> Any:
        try:
            return generation.evaluate(document)
        finally:
            with self._lock:
                job.ended = True
                if job.overran:
                    job.threads.overrunning -= 1

    def _overran(self, job: _Job) -> None:
        with self._lock:
            if job.ended:
                return
            job.overran = True
            job.threads.overrunning += 1
            held = job.threads
            wedged = held is self._threads and held.overrunning >= self._size
            if wedged:
                # Every thread is held past a deadline: fresh threads take the next decisions.
                self._threads = _Threads(self._size)
        if wedged:
            held.executor.shutdown(wait=False, cancel_futures=True)


def _settle(loop: asyncio.AbstractEventLoop, settled: asyncio.Future[None]) -> None:
    """Complete `settled` on its loop (called from the worker thread that ended)."""

    def complete() -> None:
        if not settled.done():
            settled.set_result(None)

    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(complete)
