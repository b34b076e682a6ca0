"""The embedded engine's worker threads, as one event loop sees them (the threads: engine/_pool.c).

The loop queues a decision, its input walked into a plan while the loop holds the GIL, and awaits
a future. The threads evaluate without ever taking the GIL; the pool's eventfd wakes the loop
when jobs finish, and `_collect` turns each output into the decision document. An evaluation
past its deadline keeps its thread until rego-cpp returns; `overrunning` counts those (a thread
still compiling the bundle is not stuck, and is not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

from maestro_gate.core.errors import EngineError, EngineTimeout
from maestro_gate.engine import _rego
from maestro_gate.engine.native_eval import failure, result_of

# Job ids unique across every WorkerPool: pools for different loops may share native threads.
_JOB_IDS = itertools.count()


class WorkerPool:
    """A native pool's rego-cpp worker threads, reporting to one event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, native: _rego.Pool, ids: Iterator[int] = _JOB_IDS
    ) -> None:
        self.loop = loop
        self.native = native
        self.threads = native.threads
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._overran: set[int] = set()
        self._settled: dict[int, asyncio.Future[None]] = {}
        self._ids = ids
        self._closed = False
        self._fd = self.native.fileno()
        loop.add_reader(self._fd, self._collect)

    @property
    def overrunning(self) -> int:
        """Evaluations still running past their deadline."""
        return len(self._overran)

    async def evaluate(self, generation: _rego.Generation, document: Any, timeout_s: float) -> Any:
        """The decision document for `document`; EngineError or EngineTimeout otherwise."""
        job = next(self._ids)
        try:
            self.native.submit(job, generation, document)
        except (TypeError, ValueError) as exc:
            raise EngineError(str(exc)) from None
        except RuntimeError:  # the pool is closed
            raise failure("closed") from None
        future = self._waiting[job] = self.loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            settled = self._abandon(job, overran=True)
            raise EngineTimeout(
                f"evaluation exceeded its {timeout_s * 1000:.0f} ms deadline", settled=settled
            ) from None
        except asyncio.CancelledError:
            self._abandon(job, overran=False)
            raise

    def close(self) -> None:
        """Take no more jobs; queued ones fail closed; threads end after their current job."""
        self.native.close()
        self.detach()

    def detach(self) -> None:
        """Stop reporting to this loop once the jobs it waits for are in (the threads go on)."""
        self._closed = True
        if not self._waiting:
            self._stop_watching()

    def _abandon(self, job: int, *, overran: bool) -> asyncio.Future[None]:
        """Stop waiting for a job; the future completes once its thread is free of it."""
        settled: asyncio.Future[None] = self.loop.create_future()
        state = self.native.cancel(job)
        if state == "dropped":  # still queued: it never runs
            del self._waiting[job]
        elif state == "evaluating" and overran and job in self._waiting:
            self._overran.add(job)  # `_collect` uncounts it when it ends
            self._settled[job] = settled
            return settled
        settled.set_result(None)
        return settled

    def _collect(self) -> None:
        for job, output, failed, message in self.native.take():
            future = self._waiting.pop(job, None)
            self._overran.discard(job)
            settled = self._settled.pop(job, None)
            if settled is not None and not settled.done():
                settled.set_result(None)
            try:
                value = result_of(output, failed, message)  # frees the output either way
            except Exception as exc:  # every job must end, and each failure is a deny
                if future is not None and not future.done():
                    error = exc if isinstance(exc, EngineError) else EngineError(repr(exc))
                    future.set_exception(error)
                continue
            if future is not None and not future.done():
                future.set_result(value)
        if self._closed and not self._waiting:
            self._stop_watching()

    def _stop_watching(self) -> None:
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                self.loop.remove_reader(self._fd)
