"""Admission: how much engine work one request may ask for, and one caller may hold, so no
caller can starve the others.

A request's `weight` estimates what evaluating it costs: one per item of every list the
policies iterate over, plus the square of the delegation chain's length (rules compare hops
with each other, and the path with itself). A request heavier than `max_weight` is refused
before it is evaluated (400 `request_too_complex`): the schema's size limits alone admit
delegation chains that take seconds on rego-cpp, far past any deadline.

Neither engine can interrupt an evaluation: one that runs past its deadline is answered with a
deny at the deadline, but keeps its worker thread until it ends. A caller could send one
expensive request after another and hold every worker. So each caller (its authenticated
principal) may hold at most `per_caller` evaluations at once, and while one of its evaluations
is still running past its deadline it may start no other: its next requests are refused at
once with `caller_overloaded` (HTTP 429), decided by nothing and audited as nothing, until
its held worker is free again. Other callers are not affected.

Work that is refused still costs: reading and parsing a 256 KiB body takes milliseconds of the
event loop whether it is decided or refused as too heavy. So each caller also has a work
budget, a token bucket of `rate` units a second holding at most `burst`: every `/v1/decide`
body it sends is charged one unit, plus its weight, plus one per KiB, after it is parsed,
whatever the answer. A caller whose budget is spent is refused before its next body is read
(429 `caller_overloaded`, with `Retry-After`) until the bucket has refilled above zero.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from maestro_gate.core.decision.requests import AgentAction, AnyRequest, DataMovement, Delegation
from maestro_gate.core.errors import CallerOverloaded, RequestTooComplex


def weight(request: AnyRequest) -> int:
    """The request's evaluation weight: list items, plus the chain's length squared."""
    context = request.context
    chain = context.delegation_chain
    total = len(chain) ** 2 + len(chain) + len(context.goal_scopes) + len(context.plan)
    total += sum(len(hop.scopes) for hop in chain)
    if isinstance(request, Delegation):
        total += len(request.task.scopes)
    elif isinstance(request, DataMovement):
        total += len(request.data.labels) + len(request.data.provenance)
    elif isinstance(request, AgentAction):
        total += len(request.side_effects)
        if request.execution is not None:
            total += len(request.execution.egress) + len(request.execution.secrets or ())
    return total


def check_weight(request: AnyRequest, max_weight: int) -> None:
    """Raise RequestTooComplex when the request weighs more than `max_weight`."""
    heavy = weight(request)
    if heavy > max_weight:
        raise RequestTooComplex(
            f"the request weighs {heavy} (list items plus the delegation chain's length"
            f" squared), more than the {max_weight} this gate evaluates within its deadline",
            errors=[{"code": "request_too_complex", "message": f"weight {heavy} > {max_weight}"}],
        )


@dataclass
class _Account:
    running: int = 0
    overrunning: int = 0


@dataclass
class Slot:
    """One admitted evaluation; `release` it when the engine answers, `hold` it on a timeout."""

    admission: Admission
    key: str
    _open: bool = field(default=True, repr=False)

    def release(self) -> None:
        """The engine answered: the caller's worker is free."""
        if self._open:
            self._open = False
            self.admission._leave(self.key, overran=False)

    def hold(self, settled: asyncio.Future[None]) -> None:
        """The evaluation overran its deadline: keep the slot until its worker is free."""
        if not self._open:
            return
        self._open = False
        self.admission._overrun(self.key)
        settled.add_done_callback(lambda _: self.admission._leave(self.key, overran=True))


def work_units(weight_of_request: int, body_bytes: int) -> int:
    """What one decided or refused body costs its caller's work budget."""
    return 1 + weight_of_request + body_bytes // 1024


class WorkBudget:
    """Per-caller token buckets of work units: `rate` a second, at most `burst` saved up.

    A charge may take a bucket below zero (a body is charged after it is read); the caller is
    then refused until the refill has brought it back above zero. Buckets that are full again
    are forgotten, and at most `max_callers` are kept (the least recently charged go first).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def admit(self, key: str) -> None:
        """Raise CallerOverloaded, with the seconds to wait, while `key`'s budget is spent."""
        level = self.level(key)
        if level <= 0:
            self.refused += 1
            wait = (1 - level) / self.rate
            raise CallerOverloaded(
                f"this caller has used its work budget ({self.rate:g} units a second, one per"
                f" request plus its weight plus one per KiB); retry in {math.ceil(wait)} s",
                retry_after_s=wait,
            )

    def charge(self, key: str, units: float) -> None:
        """Take `units` from `key`'s bucket (it may go below zero)."""
        now = self._clock()
        self._buckets[key] = (self._refilled(key, now) - units, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)

    def level(self, key: str) -> float:
        """The units `key` has now."""
        level = self._refilled(key, self._clock())
        if level >= self.burst:
            self._buckets.pop(key, None)
        return level

    def _refilled(self, key: str, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return self.burst
        level, since = held
        return min(self.burst, level + (now - since) * self.rate)


class Admission:
    """Per-caller limits on engine work held at once and on work done; used from one event loop."""

    def __init__(self, per_caller: int = 16, work: WorkBudget | None = None) -> None:
        self.per_caller = per_caller
        self.work = work
        self._accounts: dict[str, _Account] = {}
        self.refused = 0

    def enter(self, key: str) -> Slot:
        """A slot for one evaluation for caller `key`; raise CallerOverloaded when it holds
        `per_caller` already, or has an evaluation still running past its deadline."""
        account = self._accounts.setdefault(key, _Account())
        if account.overrunning:
            self.refused += 1
            raise CallerOverloaded(
                "an earlier request of this caller is still being evaluated past its deadline;"
                " retry when it has ended"
            )
        if account.running >= self.per_caller:
            self.refused += 1
            raise CallerOverloaded(f"this caller already has {account.running} evaluations running")
        account.running += 1
        return Slot(self, key)

    def overrunning(self) -> int:
        """Evaluations of every caller still running past their deadline."""
        return sum(account.overrunning for account in self._accounts.values())

    def held(self, key: str) -> tuple[int, int]:
        """(running, overrunning) evaluations of caller `key`."""
        account = self._accounts.get(key)
        return (account.running, account.overrunning) if account else (0, 0)

    def _overrun(self, key: str) -> None:
        self._accounts[key].overrunning += 1

    def _leave(self, key: str, *, overran: bool) -> None:
        account = self._accounts[key]
        account.running -= 1
        if overran:
            account.overrunning -= 1
        if not account.running:
            del self._accounts[key]
