"""The Redis StateSource: counters shared by every replica, one round trip per call.

Keys (under the configured prefix): `rate:{agent}` a sorted set of request times (sliding
window), `budget:{agent}:{period}` a float spent and reserved in a fixed period,
`hold:{reservation}` the cost of a reservation not yet settled, `recent:{agent}:{session}`
a capped list of history entries, newest first in Redis and listed oldest first.

A reservation is placed and given back by Lua scripts (sent with EVAL inside the pipelines, so
a costed request still takes one round trip per call), so every replica sees one order: the
script that places it reads the spend and adds the cost in one step, and the one that gives it
back does so only while its `hold:` key exists, so a release is never counted twice nor
applied to a reservation that was never placed. Spending a reservation deletes its hold.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from maestro_gate.core.decision.budgets import Reservation
from maestro_gate.core.decision.requests import AnyRequest
from maestro_gate.state.activity import chain_agents, entry, session_of, window_index

# KEYS: budget, hold; ARGV: cost, ttl. Returns the spend before the reservation.
RESERVE = """
local before = redis.call('GET', KEYS[1]) or '0'
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return before
"""

# KEYS: budget, hold; ARGV: cost. Returns 1 when the reservation was given back.
RELEASE = """
if redis.call('DEL', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('INCRBYFLOAT', KEYS[1], '-' .. ARGV[1])
  end
  return 1
end
return 0
"""


class RedisState:
    """StateSource on Redis; `snapshot` and `observe` each send one pipeline."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "maestro:",
        window_s: int = 60,
        budget_window_s: int = 3600,
        recent: int = 20,
        session_ttl_s: int = 86_400,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.window_s = window_s
        self.budget_window_s = budget_window_s
        self.recent = recent
        self.session_ttl_s = session_ttl_s
        self._on_error = on_error

    def reservation(self, request: AnyRequest, cost: float) -> Reservation:
        """A hold of `cost` on the agent's budget in the current period."""
        period = window_index(time.time(), self.budget_window_s)
        return Reservation(agent=request.subject.id, period=period, cost=cost)

    def _budget(self, agent: str, period: int) -> str:
        return f"{self.prefix}budget:{agent}:{period}"

    def _hold(self, reservation: Reservation) -> str:
        return f"{self.prefix}hold:{reservation.id}"

    def _recent(self, agent: str, request: AnyRequest) -> str:
        return f"{self.prefix}recent:{agent}:{session_of(request)}"

    def _keys(self, request: AnyRequest) -> tuple[str, str]:
        return f"{self.prefix}rate:{request.subject.id}", self._recent(request.subject.id, request)

    async def snapshot(
        self, request: AnyRequest, reservation: Reservation | None = None
    ) -> dict[str, Any]:
        """The agent's counters and its session's recent entries, in one round trip; with a
        reservation, the spend before it, the reservation placed atomically."""
        now = time.time()
        rate, recent = self._keys(request)
        agent = request.subject.id
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zcount(rate, f"({now - self.window_s}", "+inf")
                if reservation is None:
                    pipe.get(self._budget(agent, window_index(now, self.budget_window_s)))
                else:
                    keys = [self._budget(agent, reservation.period), self._hold(reservation)]
                    ttl = self.budget_window_s * 2
                    pipe.eval(RESERVE, 2, *keys, repr(reservation.cost), ttl)
                others = chain_agents(request)
                for other in others:
                    pipe.lrange(self._recent(other, request), 0, self.recent - 1)
                pipe.lrange(recent, 0, self.recent - 1)
                count, spent, *lists = await pipe.execute()
        except Exception:
            self._failed("snapshot")
            raise
        return {
            "agent": {
                "requests_in_window": int(count),
                "window_seconds": self.window_s,
                "budget_spent": float(spent) if spent is not None else 0.0,
            },
            "session": {"recent": [json.loads(i) for items in lists for i in reversed(items)]},
        }

    async def observe(
        self, request: AnyRequest, decision: str, reservation: Reservation | None = None
    ) -> None:
        """Count the request, spend or release its reservation, append it to the history."""
        now = time.time()
        rate, recent = self._keys(request)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(rate, {f"{time.time_ns()}:{uuid.uuid4().hex[:12]}": now})
                pipe.zremrangebyscore(rate, "-inf", now - self.window_s)
                pipe.expire(rate, self.window_s + 1)
                if reservation is not None and decision == "allow":
                    pipe.delete(self._hold(reservation))
                elif reservation is not None:
                    pipe.eval(RELEASE, 2, *self._release_args(reservation))
                pipe.lpush(recent, json.dumps(entry(request, decision), separators=(",", ":")))
                pipe.ltrim(recent, 0, self.recent - 1)
                pipe.expire(recent, self.session_ttl_s)
                await pipe.execute()
        except Exception:
            self._failed("observe")
            raise

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation that is still held (one script call)."""
        try:
            await self.client.eval(RELEASE, 2, *self._release_args(reservation))
        except Exception:
            self._failed("release")
            raise

    def _release_args(self, reservation: Reservation) -> tuple[str, str, str]:
        budget = self._budget(reservation.agent, reservation.period)
        return budget, self._hold(reservation), repr(reservation.cost)

    def _failed(self, op: str) -> None:
        if self._on_error is not None:
            self._on_error(op)
