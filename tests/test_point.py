"""The DecisionPoint through fakes of its Protocols: fail closed, audit first, shadow mode."""

from __future__ import annotations

from typing import Any

import pytest

from maestro_gate.core.decision.point import DecisionPoint
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.core.errors import AuditUnavailable, EngineError, EngineTimeout, InvalidRequest
from tests.fakes import MemoryAuditLog, RecordingMetrics, ScriptedEngine

pytestmark = pytest.mark.anyio

REQUEST = REQUEST_ADAPTER.validate_python(
    {
        "kind": "agent_action",
        "subject": {"id": "spiffe://corp.example/agent/analyst"},
        "action": "web.search",
        "arguments": {"q": "weather", "token": "s3cret"},
    }
)


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


def point(engine: ScriptedEngine, audit: MemoryAuditLog | None = None, **kw: Any) -> DecisionPoint:
    """A DecisionPoint on fakes."""
    return DecisionPoint(engine, audit or MemoryAuditLog(), RecordingMetrics(), **kw)


@pytest.mark.parametrize(
    ("error", "rule"),
    [
        (EngineError("boom"), "GATE.engine_error"),
        (EngineTimeout("slow"), "GATE.engine_timeout"),
        (RuntimeError("adapter bug"), "GATE.engine_error"),
    ],
)
async def test_engine_failure_denies_and_is_audited(error: Exception, rule: str) -> None:
    """Any engine failure is a deny with a GATE reason, and that deny is in the log."""
    audit = MemoryAuditLog()
    response = await point(ScriptedEngine(error=error), audit).decide(REQUEST)
    assert response.decision == "deny"
    assert [r.rule for r in response.reasons] == [rule]
    assert audit.records[0]["decision"] == "deny"
    assert audit.records[0]["rules"] == [rule]


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "allow",
        {"decision": "allow"},
        {"decision": "yes", "reasons": []},
        {"decision": "deny", "reasons": []},
        {"decision": "allow", "reasons": [{"rule": "bad id", "layer": "x", "message": "m"}]},
        {
            "decision": "allow",
            "reasons": [{"rule": "L1.x", "layer": "l1", "threats": ["X9"], "message": "m"}],
        },
    ],
)
async def test_malformed_policy_results_deny(answer: Any) -> None:
    """A result that is not the documented decision object is a deny, never an allow."""
    if answer == {"decision": "allow"}:
        answer = {"decision": "allow", "unexpected": True}
    response = await point(ScriptedEngine(answer=answer)).decide(REQUEST)
    assert response.decision == "deny"
    assert response.reasons[0].rule == "GATE.malformed_policy_result"


async def test_audit_failure_raises_and_returns_no_decision() -> None:
    """When the append fails the caller gets AuditUnavailable, not an allow."""
    metrics = RecordingMetrics()
    decision_point = DecisionPoint(ScriptedEngine(), MemoryAuditLog(fail=True), metrics)
    with pytest.raises(AuditUnavailable):
        await decision_point.decide(REQUEST)
    assert metrics.audit_failures == 1
    assert metrics.decisions == []


async def test_allow_is_returned_with_its_audit_reference() -> None:
    """An allow names the index and leaf hash its record was written at."""
    audit = MemoryAuditLog()
    decision_point = point(ScriptedEngine(), audit)
    first = await decision_point.decide(REQUEST)
    second = await decision_point.decide(REQUEST)
    assert (first.decision, first.audit.index, second.audit.index) == ("allow", 0, 1)
    assert audit.records[1]["decision_id"] == second.decision_id


async def test_policy_input_is_the_request_plus_state() -> None:
    """The engine sees the request document without nulls, plus a `state` object."""
    engine = ScriptedEngine()
    await point(engine).decide(REQUEST)
    document = engine.documents[0]
    assert document["kind"] == "agent_action"
    assert isinstance(document["state"], dict)
    assert "model" not in document
    assert document["context"]["reflection_depth"] == 0


async def test_shadow_mode_allows_but_records_the_real_verdict() -> None:
    """In shadow mode the caller gets allow; the record and the response keep the real deny."""
    deny = {
        "decision": "deny",
        "reasons": [{"rule": "L3.x", "layer": "l3_agent_frameworks", "message": "no"}],
        "obligations": [],
        "layers": {"l3_agent_frameworks": "deny"},
    }
    audit = MemoryAuditLog()
    response = await point(ScriptedEngine(answer=deny), audit, mode="shadow").decide(REQUEST)
    assert (response.decision, response.evaluated_decision, response.mode) == (
        "allow",
        "deny",
        "shadow",
    )
    assert audit.records[0]["decision"] == "deny"
    assert audit.records[0]["mode"] == "shadow"


async def test_masking_hides_values_but_hash_covers_them() -> None:
    """Masked pointers are replaced in the record; the input hash is of the unmasked input."""
    audit = MemoryAuditLog()
    plain = MemoryAuditLog()
    await point(ScriptedEngine(), audit, mask_pointers=["/arguments/token"]).decide(REQUEST)
    await point(ScriptedEngine(), plain).decide(REQUEST)
    assert audit.records[0]["input"]["arguments"]["token"] == "***"
    assert audit.records[0]["input_sha256"] == plain.records[0]["input_sha256"]


async def test_values_the_log_cannot_canonicalise_are_refused_before_deciding() -> None:
    """An integer outside the JSON-safe range is a bad request and nothing is recorded."""
    request = REQUEST_ADAPTER.validate_python(
        {
            "kind": "agent_action",
            "subject": {"id": "spiffe://corp.example/agent/analyst"},
            "action": "x",
            "arguments": {"n": 2**60},
        }
    )
    audit = MemoryAuditLog()
    engine = ScriptedEngine()
    with pytest.raises(InvalidRequest):
        await point(engine, audit).decide(request)
    assert audit.records == []
    assert engine.documents == []
