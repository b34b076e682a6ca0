"""core.periodic.Periodic: repeats its step, survives failures, stops cleanly."""

from __future__ import annotations

import asyncio

import pytest

from maestro_gate.periodic import Periodic

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


async def test_a_failing_step_is_reported_and_the_schedule_goes_on() -> None:
    """Each failure reaches on_error and the next step still runs; stop ends the task."""
    calls: list[int] = []
    errors: list[str] = []
    third = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("first step fails")

    periodic = Periodic("test", 0.001, step, lambda exc: errors.append(str(exc)))
    periodic.start()
    await asyncio.wait_for(third.wait(), 10)
    await periodic.stop()
    stopped_at = len(calls)
    await asyncio.sleep(0.01)
    assert errors == ["first step fails"]
    assert len(calls) == stopped_at >= 3


async def test_a_non_positive_interval_never_runs() -> None:
    """Interval 0 means on demand only: start does nothing."""
    ran: list[int] = []

    async def step() -> None:
        ran.append(1)

    periodic = Periodic("off", 0, step, lambda exc: None)
    periodic.start()
    await asyncio.sleep(0.01)
    await periodic.stop()
    assert ran == []
