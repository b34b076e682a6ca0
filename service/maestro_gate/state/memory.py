"""The in-process StateSource: exact sliding-window rates, fixed-period budgets, session history.

One process sees only its own traffic; run several replicas with `MAESTRO_GATE_REDIS_URL` set.
A budget's spend counts the reservations of requests still being decided; the event loop runs
one snapshot at a time, so taking the spend and adding a reservation to it is atomic.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from maestro_gate.core.decision.budgets import Reservation
from maestro_gate.core.decision.requests import AnyRequest
from maestro_gate.state.activity import chain_agents, entry, session_of, window_index

MAX_SESSIONS = 100_000


class MemoryState:
    """StateSource kept in dictionaries; bounded by `MAX_SESSIONS` least recently used sessions."""

    def __init__(
        self,
        *,
        window_s: int = 60,
        budget_window_s: int = 3600,
        recent: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self.budget_window_s = budget_window_s
        self.recent = recent
        self._clock = clock
        self._rates: dict[str, deque[float]] = {}
        self._budgets: dict[str, tuple[int, float]] = {}
        self._holds: dict[str, Reservation] = {}
        self._sessions: OrderedDict[tuple[str, str], deque[dict[str, Any]]] = OrderedDict()

    def reservation(self, request: AnyRequest, cost: float) -> Reservation:
        """A hold of `cost` on the agent's budget in the current period."""
        period = window_index(self._clock(), self.budget_window_s)
        return Reservation(agent=request.subject.id, period=period, cost=cost)

    def spent(self, agent: str) -> float:
        """What the agent has spent and reserved in the current period."""
        return self._spent(agent, window_index(self._clock(), self.budget_window_s))

    async def snapshot(
        self, request: AnyRequest, reservation: Reservation | None = None
    ) -> dict[str, Any]:
        """The agent's counters and its session's recent entries; places the reservation."""
        now = self._clock()
        agent = request.subject.id
        times = self._prune(agent, now)
        if reservation is None:
            spent = self._spent(agent, window_index(now, self.budget_window_s))
        else:
            spent = self._spent(agent, reservation.period)
            self._budgets[agent] = (reservation.period, spent + reservation.cost)
            self._holds[reservation.id] = reservation
        session = session_of(request)
        recent: list[dict[str, Any]] = []
        for other in (*chain_agents(request), agent):
            recent.extend(self._sessions.get((other, session), ()))
        return {
            "agent": {
                "requests_in_window": len(times),
                "window_seconds": self.window_s,
                "budget_spent": spent,
            },
            "session": {"recent": recent},
        }

    async def observe(
        self, request: AnyRequest, decision: str, reservation: Reservation | None = None
    ) -> None:
        """Count the request, spend or release its reservation, append it to the history."""
        now = self._clock()
        agent = request.subject.id
        self._prune(agent, now).append(now)
        if reservation is not None:
            if decision == "allow":
                self._holds.pop(reservation.id, None)
            else:
                await self.release(reservation)
        key = (agent, session_of(request))
        history = self._sessions.get(key)
        if history is None:
            history = self._sessions[key] = deque(maxlen=self.recent)
            if len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        history.append(entry(request, decision))

    async def release(self, reservation: Reservation) -> None:
        """Take a placed, unsettled reservation's cost back off its period's spend."""
        if self._holds.pop(reservation.id, None) is None:
            return
        period, spent = self._budgets.get(reservation.agent, (reservation.period, 0.0))
        if period == reservation.period:
            self._budgets[reservation.agent] = (period, max(spent - reservation.cost, 0.0))

    def _spent(self, agent: str, period: int) -> float:
        held, spent = self._budgets.get(agent, (period, 0.0))
        return spent if held == period else 0.0

    def _prune(self, agent: str, now: float) -> deque[float]:
        times = self._rates.setdefault(agent, deque())
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times
