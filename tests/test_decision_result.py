"""How the decision combines the layers' sets, on real requests, on both local engines.

`policies/maestro/decision/decision.rego` builds `result` from rules; rego-cpp's test runner
cannot afford `with` over the whole bundle, so the combination is pinned here instead: any deny
wins and lists only the denies, an open escalation lists only the escalations and asks for the
most approvers any of them needs, a granted approval covers an escalation only with enough
approvals, obligations survive a deny, reasons are sorted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from maestro_gate.core.decision.decisions import LAYERS
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.inprocess import InProcessOpaEngine
from tests.conftest import POLICIES

AGENT = "spiffe://corp.example/agent/"
TRACED = {"task_id": "task-1", "trace_id": "trace-1"}
MERGE = {
    "kind": "agent_action",
    "subject": {"id": AGENT + "coder"},
    "action": "merge_pull_request",
    "reversible": False,
    "context": TRACED,
}

Decide = Any


@pytest.fixture(scope="module", params=["embedded", "opa-inprocess"])
def decide(request: pytest.FixtureRequest) -> Iterator[Decide]:
    """The decision value of policies/ for one input document, on the engine named."""
    engine = EmbeddedEngine(workers=1) if request.param == "embedded" else InProcessOpaEngine(1)
    engine.load(read_bundle(POLICIES))
    with asyncio.Runner() as runner:

        def value(document: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = runner.run(
                engine.evaluate({"state": {}, **document}, 10)
            ).value
            return result

        try:
            yield value
        finally:
            engine.close()


def rules(result: dict[str, Any]) -> list[str]:
    return [reason["rule"] for reason in result["reasons"]]


def test_allow_has_no_reasons_and_every_layer_allows(decide: Decide) -> None:
    """An allowed request lists no reasons, asks no approver, and every layer allows it."""
    result = decide(
        {
            "kind": "agent_action",
            "subject": {"id": AGENT + "analyst-security"},
            "action": "kb_search",
            "context": TRACED,
        }
    )
    assert result["decision"] == "allow"
    assert result["reasons"] == []
    assert result["approvers_required"] == 0
    assert result["layers"] == dict.fromkeys(LAYERS, "allow")


def test_irreversible_action_escalates_to_two_approvers(decide: Decide) -> None:
    """An escalation lists only the escalations and asks for the most approvers among them."""
    result = decide(MERGE)
    assert result["decision"] == "require_hitl"
    assert rules(result) == ["L6.irreversible_dual_control"]
    assert result["approvers_required"] == 2
    assert result["layers"]["l6_security_compliance"] == "require_hitl"


def test_deny_wins_over_hitl_and_lists_only_denies(decide: Decide) -> None:
    """With a deny and an escalation, the decision is deny with the denies alone as reasons."""
    result = decide({**MERGE, "context": {}})  # no trace id: L5 denies, L6 still escalates
    assert result["decision"] == "deny"
    assert rules(result) == ["L5.trace_id_required"]
    assert result["approvers_required"] == 0
    assert result["layers"]["l5_evaluation_observability"] == "deny"
    assert result["layers"]["l6_security_compliance"] == "require_hitl"


def test_deny_keeps_obligations_and_sorts_reasons(decide: Decide) -> None:
    """A deny still carries the obligations raised, and its reasons come sorted."""
    result = decide({**MERGE, "action": "shell_exec"})
    assert result["decision"] == "deny"
    assert len(result["reasons"]) >= 2
    layers = [reason["layer"] for reason in result["reasons"]]
    assert layers == sorted(layers)  # objects compare key by key, and `layer` comes first
    assert "L4.code_exec_outside_sandbox" in rules(result)
    assert "L4.sandbox" in [o["rule"] for o in result["obligations"]]


def test_granted_approval_with_enough_approvals_covers_the_escalation(decide: Decide) -> None:
    """Two granted approvals cover dual control: allow, and the layer allows."""
    result = decide({**MERGE, "state": {"approval": {"status": "granted", "approvals": 2}}})
    assert result["decision"] == "allow"
    assert result["reasons"] == []
    assert result["approvers_required"] == 0
    assert result["layers"]["l6_security_compliance"] == "allow"


def test_one_approval_does_not_cover_dual_control(decide: Decide) -> None:
    """One granted approval leaves a two-approver escalation open."""
    result = decide({**MERGE, "state": {"approval": {"status": "granted", "approvals": 1}}})
    assert result["decision"] == "require_hitl"
    assert result["approvers_required"] == 2


def test_a_plan_outside_its_goal_is_one_reason_however_long(decide: Decide) -> None:
    """A plan of 60 steps outside its goal is one reason that counts them."""
    plan = [{"action": f"tool-{n}", "scope": f"elsewhere-{n}"} for n in range(60)]
    result = decide(
        {
            "kind": "agent_action",
            "subject": {"id": AGENT + "analyst-security"},
            "action": "kb_search",
            "context": {**TRACED, "goal_scopes": ["kb:read"], "plan": plan},
        }
    )
    assert result["decision"] == "deny"
    plan = [r for r in result["reasons"] if r["rule"] == "L3.plan_outside_goal_scope"]
    assert len(plan) == 1
    assert plan[0]["message"].startswith("60 step(s) of the plan")
