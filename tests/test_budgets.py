"""Budgets cannot be overdrawn (issue 21 item 3): spent + cost > limit, the registry's cost for a
costed tool, and concurrent requests reserving atomically in memory, in Redis and over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from maestro_gate.api.app import create_app
from maestro_gate.api.decide import parse_request
from maestro_gate.core.decision.budgets import request_cost
from maestro_gate.core.decision.point import DecisionPoint
from maestro_gate.core.decision.ports import PolicyEngine, StateSource
from maestro_gate.core.decision.registry import tool_costs
from maestro_gate.core.errors import AuditUnavailable, EngineError
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.state.memory import MemoryState
from maestro_gate.state.redis import RedisState
from tests.auth_support import gate_settings
from tests.conftest import POLICIES
from tests.fakes import MemoryAuditLog, RecordingMetrics, ScriptedEngine

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("MAESTRO_GATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
COLLECTOR = "spiffe://corp.example/agent/collector-web"  # budget_limit 50 in the registry


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


def costed_registry(tmp_path: Path, cost: float) -> Path:
    """The example registry with `web_search` costing `cost`, as a registry file."""
    registry = json.loads((POLICIES / "maestro" / "registry" / "data.json").read_text())
    registry["tools"]["web_search"]["cost"] = cost
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    return path


def search(cost: Any = None, session: str = "s-1") -> dict[str, Any]:
    """collector-web's allowed web_search, declaring `cost` when given."""
    context: dict[str, Any] = {"trace_id": "t-1", "task_id": "task-1"}
    if cost is not None:
        context["attributes"] = {"cost": cost}
    return {
        "kind": "agent_action",
        "subject": {"id": COLLECTOR, "session_id": session},
        "action": "web_search",
        "arguments": {"max_results": 5},
        "context": context,
    }


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedEngine]:
    """policies/ with web_search costing 20, on the embedded engine."""
    registry = costed_registry(tmp_path_factory.mktemp("registry"), 20)
    embedded = EmbeddedEngine(workers=2)
    embedded.load(read_bundle(POLICIES, registry))
    yield embedded
    embedded.close()


def point(engine: PolicyEngine, state: StateSource, **kw: Any) -> DecisionPoint:
    """A DecisionPoint charging web_search 20, as wiring sets it up from the bundle."""
    audit = kw.pop("audit", MemoryAuditLog())
    costs = {"web_search": 20}
    return DecisionPoint(
        engine, audit, RecordingMetrics(), timeout_s=5, state=state, tool_cost=costs.get, **kw
    )


@pytest.fixture
async def redis_state() -> AsyncIterator[RedisState]:
    """A RedisState on the test Redis under a fresh prefix; its keys are removed after."""
    client = Redis.from_url(REDIS_URL)
    prefix = f"maestro-test:{uuid.uuid4().hex}:"
    yield RedisState(client, prefix=prefix)
    async for key in client.scan_iter(f"{prefix}*"):
        await client.delete(key)
    await client.aclose()


async def redis_spent(state: RedisState) -> tuple[float, list[str]]:
    """The budget spent this period and any hold keys left, read from Redis itself."""
    spent, holds = 0.0, []
    async for key in state.client.scan_iter(f"{state.prefix}*"):
        name = key.decode()[len(state.prefix) :]
        if name.startswith("budget:"):
            spent += float(await state.client.get(key))
        elif name.startswith("hold:"):
            holds.append(name)
    return spent, holds


def test_request_cost_is_the_higher_of_declared_and_registry() -> None:
    """The caller may declare more than the registry's cost, never less; junk counts as 0."""
    costs = {"web_search": 20}
    cases = [(None, 20.0), (5, 20.0), (35, 35.0), ("99", 20.0), (-3, 20.0), (True, 20.0)]
    for declared, expected in cases:
        assert request_cost(parse_request(search(declared)), costs.get) == expected
    assert request_cost(parse_request(search(7))) == 7.0
    assert tool_costs({"maestro": {"registry": {"tools": {"a": {"cost": 2}, "b": {}}}}}) == {"a": 2}


async def test_two_concurrent_requests_cannot_overdraw_in_memory(engine: EmbeddedEngine) -> None:
    """Ten concurrent 20-cost requests on a 50 budget: two allowed, 40 spent, nothing held."""
    state = MemoryState()
    gate = point(engine, state)
    answers = await asyncio.gather(*(gate.decide(parse_request(search())) for _ in range(10)))
    decisions = sorted(a.decision for a in answers)
    assert decisions == ["allow"] * 2 + ["deny"] * 8
    denied = [a for a in answers if a.decision == "deny"]
    assert all({r.rule for r in a.reasons} == {"L6.budget_exhausted"} for a in denied)
    assert state.spent(COLLECTOR) == 40


async def test_second_request_sees_the_first_ones_reservation(engine: EmbeddedEngine) -> None:
    """At 30 of 50, of two concurrent requests costing 20 the second sees 50 spent: denied."""
    state = MemoryState()
    gate = point(engine, state)
    await gate.decide(parse_request(search(30)))
    first, second = await asyncio.gather(
        gate.decide(parse_request(search())), gate.decide(parse_request(search()))
    )
    assert (first.decision, second.decision) == ("allow", "deny")
    assert "has spent 50 of its budget of 50" in second.reasons[0].message
    assert state.spent(COLLECTOR) == 50


async def test_denied_failed_and_unaudited_requests_spend_nothing(engine: EmbeddedEngine) -> None:
    """A deny, an engine error and an audit failure each give the reservation back."""
    state = MemoryState()
    await point(engine, state).decide(parse_request(search(60)))  # over budget: denied
    erring = ScriptedEngine(error=EngineError("boom"))
    assert (await point(erring, state).decide(parse_request(search()))).decision == "deny"
    with pytest.raises(AuditUnavailable):
        await point(engine, state, audit=MemoryAuditLog(fail=True)).decide(parse_request(search()))
    assert state.spent(COLLECTOR) == 0
    assert not state._holds


async def test_a_cancelled_decision_gives_its_reservation_back(engine: EmbeddedEngine) -> None:
    """A request cancelled mid-decision (a caller gone) spends nothing."""
    state = MemoryState()

    class Stuck(ScriptedEngine):
        async def evaluate(self, document: dict[str, Any], timeout_s: float) -> Any:
            await asyncio.sleep(10)

    task = asyncio.ensure_future(point(Stuck(), state).decide(parse_request(search())))
    await asyncio.sleep(0.05)
    assert state.spent(COLLECTOR) == 20
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state.spent(COLLECTOR) == 0


async def test_concurrent_requests_cannot_overdraw_in_redis(
    engine: EmbeddedEngine, redis_state: RedisState
) -> None:
    """Through two DecisionPoints on one Redis: two of ten allowed, 40 spent, no hold left."""
    one, two = point(engine, redis_state), point(engine, redis_state)
    answers = await asyncio.gather(
        *((one if i % 2 else two).decide(parse_request(search())) for i in range(10))
    )
    assert sorted(a.decision for a in answers) == ["allow"] * 2 + ["deny"] * 8
    assert await redis_spent(redis_state) == (40.0, [])


async def test_redis_gives_back_denied_failed_and_unaudited_reservations(
    engine: EmbeddedEngine, redis_state: RedisState
) -> None:
    """Deny, engine error and audit failure leave the Redis spend and holds as they were."""
    await point(engine, redis_state).decide(parse_request(search()))  # 20, allowed
    await point(engine, redis_state).decide(parse_request(search(45)))  # would overdraw
    erring = ScriptedEngine(error=EngineError("boom"))
    await point(erring, redis_state).decide(parse_request(search()))
    with pytest.raises(AuditUnavailable):
        await point(engine, redis_state, audit=MemoryAuditLog(fail=True)).decide(
            parse_request(search())
        )
    assert await redis_spent(redis_state) == (20.0, [])


async def test_redis_release_is_idempotent_and_ignores_unplaced_holds(
    redis_state: RedisState,
) -> None:
    """A release twice, or of a reservation never placed, takes nothing off the spend."""
    request = parse_request(search())
    placed = redis_state.reservation(request, 10)
    await redis_state.snapshot(request, placed)
    await redis_state.snapshot(request, redis_state.reservation(request, 5))
    await redis_state.release(placed)
    await redis_state.release(placed)
    await redis_state.release(redis_state.reservation(request, 7))
    spent, holds = await redis_spent(redis_state)
    assert spent == 5.0
    assert len(holds) == 1


def test_concurrent_http_requests_cannot_overdraw(tmp_path: Path) -> None:
    """Over /v1/decide on the real bundle with web_search costing 20: two of ten allowed."""
    registry = costed_registry(tmp_path, 20)
    settings, headers = gate_settings(
        tmp_path, bundle_dir=POLICIES, registry_file=registry, catalog_dir=None
    )
    with TestClient(create_app(settings)) as client:

        def decide(_: int) -> str:
            response = client.post("/v1/decide", json=search(), headers=headers["root"])
            assert response.status_code == 200, response.text
            return str(response.json()["decision"])

        with ThreadPoolExecutor(max_workers=10) as pool:
            decisions = sorted(pool.map(decide, range(10)))
        last = client.post("/v1/decide", json=search(), headers=headers["root"]).json()
    assert decisions == ["allow"] * 2 + ["deny"] * 8
    assert "has spent 40 of its budget of 50" in last["reasons"][0]["message"]


def test_redis_over_http_spends_only_allowed_costs(tmp_path: Path) -> None:
    """Over /v1/decide with Redis: allowed costs are spent, a deny's is given back."""
    registry = costed_registry(tmp_path, 20)
    prefix = f"maestro-test:{uuid.uuid4().hex}:"
    settings, headers = gate_settings(
        tmp_path,
        bundle_dir=POLICIES,
        registry_file=registry,
        catalog_dir=None,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
    )
    with TestClient(create_app(settings)) as client:
        for body in (search(), search(45), search(25)):
            client.post("/v1/decide", json=body, headers=headers["root"])
    plain = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k.decode() for k in plain.scan_iter(f"{prefix}*")]
        spent = sum(float(plain.get(k) or 0) for k in keys if ":budget:" in k)
        holds = [k for k in keys if ":hold:" in k]
        for k in keys:
            plain.delete(k)
    finally:
        plain.close()
    assert (spent, holds) == (45.0, [])
