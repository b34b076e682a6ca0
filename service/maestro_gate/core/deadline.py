"""Awaiting under a deadline without arming a timer for an awaitable that never suspends.

`asyncio.timeout` schedules a loop timer on entry and cancels it on exit: several µs of
event-loop time, and one more dead entry in the loop's timer heap, per call. A timeout can only
interrupt an awaitable where it suspends, so one that runs to its end without suspending (the
in-process state source) ends the same with no timer at all. `within` runs the first step bare
and, only if that step suspends, enters `asyncio.timeout_at` at the deadline counted from the
call; the rest then runs exactly as it would have under `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`await awaitable` under `asyncio.timeout(seconds)`: same result, error or TimeoutError."""
    deadline = asyncio.get_running_loop().time() + seconds
    steps = awaitable.__await__()
    try:
        suspended_on = steps.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    async with asyncio.timeout_at(deadline):
        return await _Resumed(steps, suspended_on)


class _Resumed(Generic[T]):
    """The rest of an awaitable whose first step yielded `suspended_on` towards the task."""

    def __init__(self, steps: Generator[Any, None, T], suspended_on: Any) -> None:
        self._steps = steps
        self._suspended_on = suspended_on

    def __await__(self) -> Generator[Any, None, T]:
        steps, yielded = self._steps, self._suspended_on
        while True:
            try:
                yield yielded
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # thrown in by the task (a cancellation): pass it on
                try:
                    yielded = steps.throw(exc)
                except StopIteration as done:
                    return cast(T, done.value)
                continue
            # Resumed normally: the task sent None, which is what `yield from` starts with.
            return (yield from steps)
