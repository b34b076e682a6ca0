"""Admission: one caller's overrunning evaluations cannot take the engine from the others."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.api.decide import parse_request
from maestro_gate.core.decision.admission import (
    Admission,
    WorkBudget,
    check_weight,
    weight,
    work_units,
)
from maestro_gate.core.errors import CallerOverloaded, RequestTooComplex
from tests.conftest import action, live_client, make_settings, write_bundle
from tests.credentials import EVERYTHING, key_header, write_keys_file

# Slow for `slow.tool` on both engines (about a second on rego-cpp), instant otherwise.
SLOW_FOR_ONE_TOOL = """package maestro.decision

import rego.v1

slow if {
  input.action == "slow.tool"
  count([1 | some i in numbers.range(1, 3000000)]) > 0
}

result := {"decision": "allow", "reasons": [], "obligations": [], "layers": layers,
  "approvers_required": 0} if not slow

layers := {layer: "allow" | some layer in ["l1_foundation_models", "l2_data_operations",
  "l3_agent_frameworks", "l4_deployment_infrastructure", "l5_evaluation_observability",
  "l6_security_compliance", "l7_agent_ecosystem", "cross_layer"]}
"""


def test_a_caller_holds_at_most_its_share_of_evaluations() -> None:
    """Past `per_caller` running evaluations the caller is refused; a release admits it again."""
    admission = Admission(per_caller=2)
    first, _ = admission.enter("a"), admission.enter("a")
    with pytest.raises(CallerOverloaded):
        admission.enter("a")
    admission.enter("b").release()  # another caller is not affected
    first.release()
    admission.enter("a")
    assert admission.held("a") == (2, 0)
    assert admission.refused == 1


@pytest.mark.anyio
async def test_an_overrunning_evaluation_locks_its_caller_out_until_it_ends() -> None:
    """While a held slot's evaluation runs past its deadline, its caller may start nothing."""
    admission = Admission(per_caller=8)
    settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    admission.enter("a").hold(settled)
    with pytest.raises(CallerOverloaded, match="past its deadline"):
        admission.enter("a")
    admission.enter("b").release()
    settled.set_result(None)
    await asyncio.sleep(0)
    assert admission.held("a") == (0, 0)
    admission.enter("a").release()


def test_release_after_hold_counts_once() -> None:
    """A slot released after it was held (the engine's finally) is not released twice."""
    admission = Admission(per_caller=1)
    loop = asyncio.new_event_loop()
    try:
        settled: asyncio.Future[None] = loop.create_future()
        slot = admission.enter("a")
        slot.hold(settled)
        slot.release()
        assert admission.held("a") == (1, 1)
    finally:
        loop.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_spent_work_budget_refuses_until_it_refills() -> None:
    """A charge may overdraw the bucket; the caller is refused until the refill passes zero."""
    clock = Clock()
    budget = WorkBudget(rate=100, burst=200, clock=clock)
    budget.admit("a")
    budget.charge("a", 500)  # one heavy body: 300 units in debt
    with pytest.raises(CallerOverloaded, match="work budget") as refused:
        budget.admit("a")
    assert refused.value.retry_after_s == pytest.approx(3.01)
    budget.admit("b")  # another caller is not affected
    clock.now = 2.9
    with pytest.raises(CallerOverloaded):
        budget.admit("a")
    clock.now = 3.1
    budget.admit("a")
    assert budget.level("a") == pytest.approx(10)
    clock.now = 100
    assert budget.level("a") == 200  # never more than the burst, and then forgotten
    assert budget.refused == 2


def test_work_units_count_the_request_its_weight_and_its_kib() -> None:
    """One unit per body, plus its weight, plus one per KiB read."""
    assert work_units(0, 0) == 1
    assert work_units(640, 3 * 1024 + 5) == 1 + 640 + 3


def test_a_caller_past_its_work_budget_gets_429_before_its_body_is_read(tmp_path: Path) -> None:
    """A body too heavy to evaluate spends its sender's budget: 429 with Retry-After, unaudited."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/d.rego": SLOW_FOR_ONE_TOOL})
    keys = write_keys_file(tmp_path / "keys.json", {"attacker": EVERYTHING, "agent": EVERYTHING})
    settings = make_settings(
        tmp_path, bundle, caller_work_rate=10, caller_work_burst=100, max_request_weight=50
    )
    heavy = action("web.search")
    heavy["context"] = {"goal_scopes": [f"g{n}" for n in range(200)]}
    with TestClient(create_app(settings)) as client:
        attacker, agent = key_header(keys["attacker"]), key_header(keys["agent"])
        records = client.get("/v1/status", headers=agent).json()["audit"]["records"]
        first = client.post("/v1/decide", json=heavy, headers=attacker)
        assert first.json()["code"] == "request_too_complex"
        refused = client.post("/v1/decide", json=action("web.search"), headers=attacker)
        assert refused.status_code == 429
        assert refused.json()["code"] == "caller_overloaded"
        assert 1 <= int(refused.headers["Retry-After"]) <= 11
        ordinary = client.post("/v1/decide", json=action("web.search"), headers=agent)
        assert ordinary.json()["decision"] == "allow"
        assert client.get("/v1/status", headers=agent).json()["audit"]["records"] == records + 1


@pytest.mark.parametrize("engine", ["embedded", "opa-inprocess"])
def test_an_expensive_caller_is_refused_while_others_are_decided(
    tmp_path: Path, engine: str
) -> None:
    """After its request overruns, the attacker gets 429s (not audited); others get decisions."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/d.rego": SLOW_FOR_ONE_TOOL})
    keys = write_keys_file(tmp_path / "keys.json", {"attacker": EVERYTHING, "agent": EVERYTHING})
    settings = make_settings(tmp_path, bundle, engine=engine, decision_timeout_ms=50)
    with TestClient(create_app(settings)) as client:
        attacker, agent = key_header(keys["attacker"]), key_header(keys["agent"])
        slow = client.post("/v1/decide", json=action("slow.tool"), headers=attacker)
        assert slow.json()["reasons"][0]["rule"] == "GATE.engine_timeout"
        records = client.get("/v1/status", headers=agent).json()["audit"]["records"]
        refused = client.post("/v1/decide", json=action("web.search"), headers=attacker)
        assert refused.status_code == 429
        assert refused.json()["code"] == "caller_overloaded"
        ordinary = client.post("/v1/decide", json=action("web.search"), headers=agent)
        assert ordinary.json()["decision"] == "allow"
        assert client.get("/v1/status", headers=agent).json()["audit"]["records"] == records + 1
        deadline = time.monotonic() + 60
        while True:  # the attacker is admitted again once its evaluation has ended
            again = client.post("/v1/decide", json=action("web.search"), headers=attacker)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert again.json()["decision"] == "allow"


def test_a_plan_weighs_one_per_step_whatever_the_goal() -> None:
    """Plan steps and goal scopes count once each: L3 gives the whole plan one reason."""
    body = action("web.search")
    body["context"] = {
        "goal_scopes": [f"goal-{n}" for n in range(256)],
        "plan": [{"action": f"tool-{n}", "scope": f"x-{n}"} for n in range(256)],
    }
    assert weight(parse_request(body)) == 512


def test_a_request_heavier_than_the_limit_is_refused_before_evaluation(tmp_path: Path) -> None:
    """A chain at the schema's limits weighs past the limit: 400 request_too_complex, unaudited."""
    hop = {
        "delegator": "spiffe://corp.example/agent/a",
        "delegatee": "spiffe://corp.example/agent/a",
        "scopes": ["s"] * 4,
    }
    body = action("web.search")
    body["context"] = {"delegation_chain": [hop] * 24}
    assert weight(parse_request(body)) == 24 * 24 + 24 + 24 * 4
    check_weight(parse_request(body), 700)
    with pytest.raises(RequestTooComplex):
        check_weight(parse_request(body), 600)
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/d.rego": SLOW_FOR_ONE_TOOL})
    settings = make_settings(tmp_path, bundle, max_request_weight=600)
    with live_client(settings) as client:
        records = client.get("/v1/status").json()["audit"]["records"]
        refused = client.post("/v1/decide", json=body)
        assert client.get("/v1/status").json()["audit"]["records"] == records
    assert refused.status_code == 400
    assert refused.json()["code"] == "request_too_complex"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"
