"""The native worker threads (engine/_pool.c through engine/pool.py), on the real rego-cpp."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.core.errors import EngineError, EngineTimeout
from maestro_gate.engine import _rego
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine, compile_bundle, sources_of
from maestro_gate.engine.native_eval import evaluate
from maestro_gate.engine.pool import WorkerPool
from tests.conftest import write_bundle
from tests.test_engine_patches import documents

ROOT = Path(__file__).resolve().parents[1]

ECHO = "package maestro.decision\n\nresult := input\n"

SLOW = """package maestro.decision

import rego.v1

default slow := false

slow if {
  input.action == "slow"
  count([1 | some i in numbers.range(1, 400000)]) > 0
}

result := input.action if not slow

result := "slow, at last" if slow
"""


RESULT_IS = 'package maestro.decision\n\nresult := "{}"\n'


def generation(root: Path) -> _rego.Generation:
    """The sources a pool's threads compile, as EmbeddedEngine.load gives them."""
    return sources_of(read_bundle(root))


def workers(threads: int, first_id: int = 0) -> WorkerPool:
    """`threads` fresh native workers reporting to the running loop."""
    ids = itertools.count(first_id)
    return WorkerPool(asyncio.get_running_loop(), _rego.Pool(threads), ids)


@pytest.fixture
def echo_root(tmp_path: Path) -> Path:
    """A bundle whose decision document is its input."""
    return write_bundle(tmp_path / "echo", {"maestro/decision/echo.rego": ECHO})


@pytest.fixture
def slow_root(tmp_path: Path) -> Path:
    """A bundle slow for action "slow" (~0.6 s, ~5 s under ASan) and at once otherwise."""
    return write_bundle(tmp_path / "slow", {"maestro/decision/slow.rego": SLOW})


@pytest.mark.anyio
async def test_the_pool_decides_as_a_single_evaluation_does() -> None:
    """Every scenario request, 8 at a time on 2 threads, decides as `vm.evaluate` decides it."""
    inputs = documents()
    rego, program = compile_bundle(read_bundle(ROOT / "policies"))
    expected = [evaluate(rego, program, DECISION_ENTRYPOINT.encode(), d) for d in inputs]
    engine = EmbeddedEngine(workers=2)
    engine.load(read_bundle(ROOT / "policies"))
    gate = asyncio.Semaphore(8)

    async def decide(document: dict[str, Any]) -> Any:
        async with gate:
            return (await engine.evaluate(document, timeout_s=10)).value

    assert await asyncio.gather(*(decide(d) for d in inputs * 3)) == expected * 3
    engine.close()


@pytest.mark.anyio
async def test_concurrent_inputs_come_back_to_their_own_callers(echo_root: Path) -> None:
    """300 different documents in flight on 3 threads: each caller gets its own back."""
    pool = workers(3)
    sources = generation(echo_root)
    docs = [{"n": i, "text": "x" * (i % 50), "list": list(range(i % 7))} for i in range(300)]
    results = await asyncio.gather(*(pool.evaluate(sources, d, 10) for d in docs))
    assert results == docs
    pool.close()


@pytest.mark.anyio
async def test_a_job_still_queued_at_its_deadline_never_runs(slow_root: Path) -> None:
    """Dropped from the queue, so it does not count as an evaluation holding a thread."""
    pool = workers(1)
    sources = generation(slow_root)
    slow = asyncio.ensure_future(pool.evaluate(sources, {"action": "slow"}, 30))
    await asyncio.sleep(0.05)  # the one thread is busy with it
    with pytest.raises(EngineTimeout):
        await pool.evaluate(sources, {"action": "fast"}, 0.05)
    assert pool.overrunning == 0
    assert await slow == "slow, at last"
    assert await pool.evaluate(sources, {"action": "after"}, 10) == "after"
    pool.close()


@pytest.mark.anyio
async def test_an_evaluation_past_its_deadline_counts_until_it_ends(slow_root: Path) -> None:
    """It keeps its thread (rego-cpp cannot be interrupted) and is counted until it returns."""
    pool = workers(1)
    sources = generation(slow_root)
    assert await pool.evaluate(sources, {"action": "first"}, 30) == "first"  # compiled: a compile
    with pytest.raises(EngineTimeout):  # outlasting the deadline would not count (test below)
        await pool.evaluate(sources, {"action": "slow"}, 0.05)
    assert pool.overrunning == 1
    assert await pool.evaluate(sources, {"action": "next"}, 30) == "next"
    assert pool.overrunning == 0
    pool.close()


@pytest.mark.anyio
async def test_a_deadline_that_fires_after_the_result_came_counts_no_overrun(
    echo_root: Path,
) -> None:
    """The timeout can win the race against a result already collected: nothing stays held."""
    pool = workers(1, first_id=700)
    assert await pool.evaluate(generation(echo_root), {"a": 1}, 10) == {"a": 1}
    pool._abandon(700, overran=True)  # as a timeout firing just after collection would
    assert pool.overrunning == 0
    pool.close()


@pytest.mark.anyio
async def test_a_thread_compiling_the_bundle_is_not_counted_as_held(slow_root: Path) -> None:
    """A compile (~100 ms) outlasting a tight deadline is not a stuck evaluation."""
    pool = workers(1)
    sources = generation(ROOT / "policies")  # never prepared for this pool: the job compiles it
    with pytest.raises(EngineTimeout):
        await pool.evaluate(sources, documents()[0], 0.005)
    assert pool.overrunning == 0
    pool.close()


def test_load_compiles_a_copy_for_every_worker() -> None:
    """After load() no worker has a compile ahead of it."""
    engine = EmbeddedEngine(workers=3)
    engine.load(read_bundle(ROOT / "policies"))
    assert engine._active is not None
    assert engine._native.warmed(engine._active.sources) == 3
    engine.close()


def test_a_tight_deadline_is_met_from_the_first_decision() -> None:
    """A 50 ms deadline, shorter than a compile: the first decisions are answered, not timed out.

    Before load() prepared the workers, each first decision compiled the bundle past its
    deadline, and every timeout started a fresh, cold pool: nothing was ever decided.
    """
    engine = EmbeddedEngine(workers=2)
    engine.load(read_bundle(ROOT / "policies"))

    async def first_decisions() -> list[Any]:
        batch = [engine.evaluate(d, timeout_s=0.05) for d in documents()[:4]]
        return [r.value["decision"] for r in await asyncio.gather(*batch)]

    assert set(asyncio.run(first_decisions())) <= {"allow", "deny", "require_hitl"}
    engine.close()


@pytest.mark.anyio
async def test_a_closed_pool_fails_its_queued_jobs_closed(slow_root: Path) -> None:
    """Queued jobs end as EngineError (a deny), not lost; new submissions are refused."""
    pool = workers(1)
    sources = generation(slow_root)
    running = asyncio.ensure_future(pool.evaluate(sources, {"action": "slow"}, 30))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(pool.evaluate(sources, {"action": "queued"}, 30))
    await asyncio.sleep(0.01)
    pool.close()
    with pytest.raises(EngineError, match="replaced"):
        await queued
    assert await running == "slow, at last"  # the job already running still ends normally
    with pytest.raises(EngineError, match="replaced"):
        await pool.evaluate(sources, {"action": "late"}, 1)


@pytest.mark.anyio
async def test_sources_that_do_not_compile_fail_closed(tmp_path: Path) -> None:
    """A thread that cannot compile the bundle answers EngineError with rego-cpp's reason."""
    pool = workers(1)
    broken = _rego.Generation(
        [("maestro/decision/x.rego", "package maestro.decision\nresult := {")], "{}", "x/y"
    )
    with pytest.raises(EngineError, match="did not compile"):
        await pool.evaluate(broken, {}, 10)
    pool.close()


@pytest.mark.anyio
async def test_input_the_engine_cannot_take_is_refused_and_the_pool_goes_on(
    echo_root: Path,
) -> None:
    """A NUL in a string is refused before queueing; the next decision is served."""
    pool = workers(1)
    sources = generation(echo_root)
    with pytest.raises(EngineError, match="NUL"):
        await pool.evaluate(sources, {"a": "x\x00y"}, 10)
    assert await pool.evaluate(sources, {"a": "ok"}, 10) == {"a": "ok"}
    pool.close()


def test_a_new_bundle_reaches_every_thread(tmp_path: Path) -> None:
    """After load(), each worker compiles the new bundle on its next job: no old answers."""
    first, second = (
        write_bundle(tmp_path / name, {"maestro/decision/r.rego": RESULT_IS.format(name)})
        for name in ("a", "b")
    )
    engine = EmbeddedEngine(workers=2)

    async def decide_many() -> set[Any]:
        results = await asyncio.gather(*(engine.evaluate({}, timeout_s=10) for _ in range(20)))
        return {r.value for r in results}

    engine.load(read_bundle(first))
    assert asyncio.run(decide_many()) == {"a"}
    engine.load(read_bundle(second))
    assert asyncio.run(decide_many()) == {"b"}  # a second event loop also gets a pool
    engine.close()


def test_loading_the_patches_leaves_rego_cpp_its_own_allocator() -> None:
    """No operator new in the global scope: rego-cpp's (snmalloc) binds, not glibc's."""
    everything = ctypes.CDLL(None)
    with pytest.raises(AttributeError):
        everything._Znwm  # noqa: B018 - the lookup is the test


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


def _nice_of_threads() -> set[int]:
    """The nice value of every thread of this process (field 19 of /proc/self/task/*/stat)."""
    values = set()
    for stat in Path("/proc/self/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        values.add(int(fields[16]))
    return values


@pytest.mark.anyio
async def test_worker_threads_yield_the_cpu_to_the_event_loop(echo_root: Path) -> None:
    """The native workers run at nice 10, so an overrunning evaluation cannot delay answers."""
    pool = workers(2)
    try:
        assert await pool.evaluate(generation(echo_root), {"a": 1}, 5) == {"a": 1}
        assert 10 in _nice_of_threads()
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the loop's own thread is not lowered
    finally:
        pool.close()
