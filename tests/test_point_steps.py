"""Each step of `DecisionPoint.decide`, alone: gather state, evaluate, apply safeguards, settle
the approval, record, answer. Fakes of the core's Protocols; a real SQLite approval store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.approvals.sqlite import SqliteApprovalStore
from maestro_gate.core.decision.callers import AGENT, Caller
from maestro_gate.core.decision.controls import Controls, Stop
from maestro_gate.core.decision.decisions import PolicyResult, check_policy_result, policy_ref
from maestro_gate.core.decision.point import Asked, DecisionPoint, Gathered
from maestro_gate.core.decision.ports import AuditReceipt
from maestro_gate.core.decision.requests import REQUEST_ADAPTER, AnyRequest
from maestro_gate.core.errors import AuditUnavailable
from tests.fakes import BUNDLE, MemoryAuditLog, RecordingMetrics, ScriptedEngine

pytestmark = pytest.mark.anyio

ANALYST = "spiffe://corp.example/agent/analyst"
HITL = {
    "decision": "require_hitl",
    "reasons": [
        {
            "rule": "L7.irreversible_needs_approval",
            "layer": "l7_agent_ecosystem",
            "threats": ["T7"],
            "message": "a human must approve",
        }
    ],
    "obligations": [],
    "layers": {"l7_agent_ecosystem": "require_hitl"},
}
DENY = {
    "decision": "deny",
    "reasons": [
        {
            "rule": "L3.tool_not_allowlisted",
            "layer": "l3_agent_frameworks",
            "threats": ["T2"],
            "message": "not allowlisted",
        }
    ],
    "obligations": [],
    "layers": {"l3_agent_frameworks": "deny"},
}


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
async def approvals(tmp_path: Path) -> AsyncIterator[SqliteApprovalStore]:
    """A started SQLite approval store in tmp_path."""
    store = SqliteApprovalStore(tmp_path / "audit.db")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def request(**extra: Any) -> AnyRequest:
    """An agent action by the analyst."""
    body = {"kind": "agent_action", "subject": {"id": ANALYST}, "action": "web.search", **extra}
    return REQUEST_ADAPTER.validate_python(body)


def asked(point: DecisionPoint, req: AnyRequest, caller: Caller | None = None) -> Asked:
    """The request as `decide` hands it to the first step."""
    document = req.model_dump(mode="json", exclude_none=True)
    return Asked(
        req, caller, document, "0" * 64, time.perf_counter(), None, controls=point.controls
    )


def result(value: dict[str, Any]) -> PolicyResult:
    """A checked policy result."""
    return check_policy_result(value)


POLICY = policy_ref(BUNDLE, "scripted", None)


async def test_gather_state_adds_the_gates_own_state_and_the_caller() -> None:
    """The state carries the clock, pending count, stops and the caller's bindings."""
    stop = Stop(kind="agent", id="spiffe://x/agent/rogue", by="admin", at="t")
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(), RecordingMetrics())
    point.apply_controls(Controls(stops=(stop,)))
    caller = Caller(principal="runtime", roles=frozenset({AGENT}), subjects=frozenset({ANALYST}))
    gathered = await point.gather_state(asked(point, request(), caller))
    assert gathered.state["emergency_stop"] == {"agents": ["spiffe://x/agent/rogue"], "classes": []}
    assert gathered.state["pending_approvals"] == 0
    assert gathered.state["now_ns"] > 0
    assert gathered.state["caller"] == caller.state(ANALYST)
    assert (gathered.state_error, gathered.held, gathered.status) == (None, None, None)


async def test_gather_state_names_an_unknown_approval_a_mismatch(
    approvals: SqliteApprovalStore,
) -> None:
    """An approval id the store does not hold is seen as `mismatch`, with no approvals."""
    point = DecisionPoint(
        ScriptedEngine(), MemoryAuditLog(), RecordingMetrics(), approvals=approvals
    )
    gathered = await point.gather_state(asked(point, request(approval_id="nope")))
    assert gathered.status == "mismatch"
    assert gathered.state["approval"] == {"id": "nope", "status": "mismatch", "approvals": 0}


async def test_evaluate_with_no_time_left_denies_without_asking_the_engine() -> None:
    """A request that spent its deadline is a GATE.engine_timeout deny; the engine is not asked."""
    engine = ScriptedEngine()
    point = DecisionPoint(engine, MemoryAuditLog(), RecordingMetrics(), timeout_s=0.01)
    late = asked(point, request())
    late.started -= 1.0
    decided, policy = await point.evaluate(late, Gathered(state={}))
    assert decided.decision == "deny"
    assert [r.rule for r in decided.reasons] == ["GATE.engine_timeout"]
    assert engine.documents == []
    assert policy.revision == BUNDLE.revision


async def test_evaluate_sends_the_request_with_its_state() -> None:
    """The engine sees the request document with `state` beside it."""
    engine = ScriptedEngine()
    point = DecisionPoint(engine, MemoryAuditLog(), RecordingMetrics())
    decided, _ = await point.evaluate(asked(point, request()), Gathered(state={"x": 1}))
    assert decided.decision == "allow"
    assert engine.documents[0]["state"] == {"x": 1}
    assert engine.documents[0]["action"] == "web.search"


def test_apply_safeguards_denies_a_stopped_agent_whatever_the_policy_said() -> None:
    """An emergency stop turns the bundle's allow into an L6.emergency_stop deny."""
    stop = Stop(kind="agent", id=ANALYST, by="admin", at="t")
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(), RecordingMetrics())
    point.apply_controls(Controls(stops=(stop,)))
    allowed = result({"decision": "allow", "reasons": [], "obligations": [], "layers": {}})
    safe = point.apply_safeguards(asked(point, request()), Gathered(state={}), allowed)
    assert safe.decision == "deny"
    assert [r.rule for r in safe.reasons] == ["L6.emergency_stop"]


def test_apply_safeguards_denies_when_the_state_could_not_be_read() -> None:
    """An unreadable state store is a GATE.state_unavailable deny."""
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(), RecordingMetrics())
    allowed = result({"decision": "allow", "reasons": [], "obligations": [], "layers": {}})
    gathered = Gathered(state={}, state_error="the state store could not be read: boom")
    safe = point.apply_safeguards(asked(point, request()), gathered, allowed)
    assert [r.rule for r in safe.reasons] == ["GATE.state_unavailable"]


async def test_settle_approval_opens_one_when_a_human_must_decide(
    approvals: SqliteApprovalStore,
) -> None:
    """A require_hitl opens a pending approval and answers with its ticket."""
    point = DecisionPoint(
        ScriptedEngine(), MemoryAuditLog(), RecordingMetrics(), approvals=approvals
    )
    first = asked(point, request())
    settled = await point.settle_approval(first, Gathered(state={}), result(HITL), POLICY)
    assert settled.answer == "require_hitl"
    assert settled.event == "created"
    assert settled.ticket is not None
    assert settled.held is not None
    stored = await approvals.get(settled.ticket.id)
    assert stored is not None
    assert stored.status == "pending"
    assert stored.decision_id == first.decision_id


async def test_settle_approval_without_a_store_cannot_ask_a_human() -> None:
    """With no approval store a require_hitl is AuditUnavailable: nothing is decided."""
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(), RecordingMetrics())
    with pytest.raises(AuditUnavailable):
        await point.settle_approval(
            asked(point, request()), Gathered(state={}), result(HITL), POLICY
        )


async def test_settle_approval_in_shadow_mode_answers_allow() -> None:
    """Under shadow mode a deny is answered allow; nothing is opened."""
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(), RecordingMetrics())
    point.apply_controls(Controls(mode="shadow"))
    settled = await point.settle_approval(
        asked(point, request()), Gathered(state={}), result(DENY), POLICY
    )
    assert (settled.answer, settled.result.decision, settled.event) == ("allow", "deny", None)


async def test_record_appends_the_decision_with_its_rules() -> None:
    """The record names the decision, its rules and the input digest, and returns its place."""
    audit = MemoryAuditLog()
    point = DecisionPoint(ScriptedEngine(), audit, RecordingMetrics())
    one = asked(point, request())
    settled = await point.settle_approval(one, Gathered(state={}), result(DENY), POLICY)
    receipt = await point.record(one, settled, POLICY)
    [record] = audit.records
    assert receipt.index == record["index"] == 0
    assert (record["decision_id"], record["decision"]) == (one.decision_id, "deny")
    assert record["rules"] == ["L3.tool_not_allowlisted"]
    assert record["input_sha256"] == one.input_sha256


async def test_record_that_cannot_be_appended_raises() -> None:
    """A failing log raises AuditUnavailable: no receipt, so no answer."""
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(fail=True), RecordingMetrics())
    one = asked(point, request())
    settled = await point.settle_approval(one, Gathered(state={}), result(DENY), POLICY)
    with pytest.raises(AuditUnavailable):
        await point.record(one, settled, POLICY)


async def test_answer_counts_and_carries_the_audit_place() -> None:
    """The answer carries the decision, reasons and audit index; the metrics count it once."""
    metrics = RecordingMetrics()
    point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(), metrics)
    one = asked(point, request())
    settled = await point.settle_approval(one, Gathered(state={}), result(DENY), POLICY)
    response = point.answer(one, settled, POLICY, AuditReceipt(index=7, leaf_hash="ab" * 32))
    assert (response.decision_id, response.decision) == (one.decision_id, "deny")
    assert response.audit.index == 7
    assert [r.rule for r in response.reasons] == ["L3.tool_not_allowlisted"]
    assert response.evaluated_decision is None
    assert len(metrics.decisions) == 1
