"""The Redis StateSource: counters shared by every replica, one round trip per call.

Keys (under the configured prefix): `rate:{agent}` a sorted set of request times (sliding
window), `budget:{agent}:{period}` a float spent in a fixed period, `recent:{agent}:{session}`
a capped list of history entries, newest first in Redis and listed oldest first.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from maestro_gate.core.requests import AnyRequest
from maestro_gate.state.activity import cost_of, entry, session_of, window_index


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

    def _keys(self, request: AnyRequest, now: float) -> tuple[str, str, str]:
        agent = request.subject.id
        period = window_index(now, self.budget_window_s)
        return (
            f"{self.prefix}rate:{agent}",
            f"{self.prefix}budget:{agent}:{period}",
            f"{self.prefix}recent:{agent}:{session_of(request)}",
        )

    async def snapshot(self, request: AnyRequest) -> dict[str, Any]:
        """The agent's counters and its session's recent entries, in one round trip."""
        now = time.time()
        rate, budget, recent = self._keys(request, now)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zcount(rate, f"({now - self.window_s}", "+inf")
                pipe.get(budget)
                pipe.lrange(recent, 0, self.recent - 1)
                count, spent, items = await pipe.execute()
        except Exception:
            self._failed("snapshot")
            raise
        return {
            "agent": {
                "requests_in_window": int(count),
                "window_seconds": self.window_s,
                "budget_spent": float(spent) if spent is not None else 0.0,
            },
            "session": {"recent": [json.loads(i) for i in reversed(items)]},
        }

    async def observe(self, request: AnyRequest, decision: str) -> None:
        """Count the request, spend its cost if allowed, append it to the history."""
        now = time.time()
        rate, budget, recent = self._keys(request, now)
        cost = cost_of(request, decision)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(rate, {f"{time.time_ns()}:{uuid.uuid4().hex[:12]}": now})
                pipe.zremrangebyscore(rate, "-inf", now - self.window_s)
                pipe.expire(rate, self.window_s + 1)
                if cost:
                    pipe.incrbyfloat(budget, cost)
                    pipe.expire(budget, self.budget_window_s * 2)
                pipe.lpush(recent, json.dumps(entry(request, decision), separators=(",", ":")))
                pipe.ltrim(recent, 0, self.recent - 1)
                pipe.expire(recent, self.session_ttl_s)
                await pipe.execute()
        except Exception:
            self._failed("observe")
            raise

    def _failed(self, op: str) -> None:
        if self._on_error is not None:
            self._on_error(op)
