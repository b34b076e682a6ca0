"""The in-process StateSource: exact sliding-window rates, fixed-period budgets, session history.

One process sees only its own traffic; run several replicas with `MAESTRO_GATE_REDIS_URL` set.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from maestro_gate.core.requests import AnyRequest
from maestro_gate.state.activity import cost_of, entry, session_of, window_index

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
        self._sessions: OrderedDict[tuple[str, str], deque[dict[str, Any]]] = OrderedDict()

    async def snapshot(self, request: AnyRequest) -> dict[str, Any]:
        """The agent's counters and its session's recent entries."""
        now = self._clock()
        agent = request.subject.id
        times = self._prune(agent, now)
        period, spent = self._budgets.get(agent, (0, 0.0))
        if period != window_index(now, self.budget_window_s):
            spent = 0.0
        recent = self._sessions.get((agent, session_of(request)))
        return {
            "agent": {
                "requests_in_window": len(times),
                "window_seconds": self.window_s,
                "budget_spent": spent,
            },
            "session": {"recent": list(recent) if recent else []},
        }

    async def observe(self, request: AnyRequest, decision: str) -> None:
        """Count the request, spend its cost if allowed, append it to the session history."""
        now = self._clock()
        agent = request.subject.id
        self._prune(agent, now).append(now)
        cost = cost_of(request, decision)
        if cost:
            period = window_index(now, self.budget_window_s)
            held, spent = self._budgets.get(agent, (period, 0.0))
            self._budgets[agent] = (period, (spent if held == period else 0.0) + cost)
        key = (agent, session_of(request))
        history = self._sessions.get(key)
        if history is None:
            history = self._sessions[key] = deque(maxlen=self.recent)
            if len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        history.append(entry(request, decision))

    def _prune(self, agent: str, now: float) -> deque[float]:
        times = self._rates.setdefault(agent, deque())
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times
