"""The seed incidents as end-to-end requests, decided by the shipped bundle through regopy's VM.

Each `tests/scenarios/<name>.json` holds a `/v1/decide` body and the decision and rule ids it must
produce; the input is the request as the service dumps it, with the gate state a fresh gate gives
it: the arguments checked against the tool's registry input_schema (core/decision/arguments.py) as
the DecisionPoint checks them, and no history unless the fixture lists its session's earlier
requests under `history` (tests/scenario_history.py), each of which must be allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import regopy

from maestro_gate.core.decision.arguments import ToolSchemas
from maestro_gate.core.decision.decisions import LAYERS, check_policy_result
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, read_bundle
from tests.scenario_history import session_state

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "tests" / "scenarios").glob("*.json"))


class Decider:
    """The shipped bundle compiled once, evaluated through the bundle VM."""

    def __init__(self) -> None:
        bundle = read_bundle(ROOT / "policies")
        self.rego = regopy.Interpreter()
        self.rego.strict_built_in_errors = True
        for path, source in bundle.modules.items():
            self.rego.add_module(path, source)
        self.rego.add_data(bundle.data)
        self.program = self.rego.build(None, [DECISION_ENTRYPOINT])
        self.schemas = ToolSchemas(bundle.data)

    def fresh_state(self, document: dict[str, Any]) -> dict[str, Any]:
        """What a gate with no history puts in `input.state`: the argument check, if any."""
        if document.get("kind") != "agent_action":
            return {}
        checked = self.schemas.check(document["action"], document.get("arguments", {}))
        return {} if checked is None else {"arguments": checked}

    def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        """The decision document for one input."""
        self.rego.set_input(regopy.Input(document))
        output = self.rego.query_bundle_entrypoint(self.program, DECISION_ENTRYPOINT)
        result: dict[str, Any] = json.loads(str(output))["expressions"][0]
        return result


@pytest.fixture(scope="module")
def decider() -> Decider:
    """One compiled bundle for the whole module."""
    return Decider()


def load(path: Path) -> dict[str, Any]:
    scenario: dict[str, Any] = json.loads(path.read_text())
    return scenario


def test_scenarios_exist_for_both_seeds_and_all_verdicts() -> None:
    """The fixtures cover both seeds and every verdict."""
    scenarios = [load(p) for p in SCENARIOS]
    assert {s["seed"] for s in scenarios} == {"000", "003"}
    assert {s["expect"]["decision"] for s in scenarios} == {"allow", "deny", "require_hitl"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_decision_and_rules(path: Path, decider: Decider) -> None:
    """A scenario's request is valid and the bundle decides it with the expected rules."""
    scenario = load(path)
    assert set(scenario) - {"history"} == {"description", "seed", "request", "expect"}
    for i, body in enumerate(scenario.get("history", [])):
        earlier = {**scenario, "history": scenario["history"][:i], "request": body}
        document = REQUEST_ADAPTER.validate_python(body).model_dump(mode="json", exclude_none=True)
        state = decider.fresh_state(document) | session_state(earlier)
        assert decider.decide(document | {"state": state})["decision"] == "allow", body
    request = REQUEST_ADAPTER.validate_python(scenario["request"])
    document = request.model_dump(mode="json", exclude_none=True)
    state = decider.fresh_state(document) | session_state(scenario)
    result = decider.decide(document | {"state": state})
    checked = check_policy_result(result)
    assert checked.decision == result["decision"], checked.reasons
    assert set(result["layers"]) == set(LAYERS)
    expect = scenario["expect"]
    assert result["decision"] == expect["decision"], result["reasons"]
    fired = {reason["rule"] for reason in result["reasons"]}
    assert set(expect["rules"]) <= fired, f"missing {set(expect['rules']) - fired}; got {fired}"
    if expect["decision"] == "allow":
        assert result["reasons"] == []


AGENT = "spiffe://corp.example/agent/"
MERGE = {
    "kind": "agent_action",
    "subject": {"id": AGENT + "coder"},
    "context": {"task_id": "issue-1", "trace_id": "trace-1"},
    "action": "merge_pull_request",
}
EXPORT = {
    "kind": "data_movement",
    "subject": {"id": AGENT + "reporter"},
    "context": {
        "task_id": "digest",
        "trace_id": "trace-2",
        "delegation_chain": [
            {"delegator": AGENT + "analyst-security", "delegatee": AGENT + "reporter"}
        ],
    },
    "data": {"classification": "public", "provenance": ["reports"]},
    "source": {"type": "store", "id": "reports"},
    "destination": {"type": "external", "id": "reports.partner.example"},
    "operation": "export",
}


def decide_with_state(decider: Decider, body: dict[str, Any], state: dict[str, Any]) -> Any:
    request = REQUEST_ADAPTER.validate_python(body)
    return decider.decide(request.model_dump(mode="json", exclude_none=True) | {"state": state})


@pytest.mark.parametrize(
    ("body", "state", "decision", "rule"),
    [
        (MERGE, {}, "require_hitl", "L6.irreversible_dual_control"),
        (MERGE, {"approval": {"id": "a", "status": "granted", "approvals": 2}}, "allow", None),
        (
            MERGE,
            {"approval": {"id": "a", "status": "granted", "approvals": 1}},
            "require_hitl",
            "L6.irreversible_dual_control",
        ),
        (
            MERGE,
            {"approval": {"id": "a", "status": "pending", "approvals": 0}},
            "require_hitl",
            None,
        ),
        (
            MERGE,
            {
                "approval": {"id": "a", "status": "granted", "approvals": 2},
                "emergency_stop": {"classes": ["engineering"]},
            },
            "deny",
            "L6.emergency_stop_class",
        ),
        (MERGE, {"pending_approvals": 50}, "deny", "L5.approval_queue_overloaded"),
        (
            MERGE,
            {"caller": {"authenticated_subjects": [AGENT + "reporter"]}},
            "deny",
            "L7.impersonated_agent",
        ),
        (EXPORT, {}, "allow", None),
        (
            EXPORT,
            {"session": {"recent": [{"kind": "data_movement", "classification": "restricted"}]}},
            "deny",
            "CL.restricted_session_to_external",
        ),
        (
            EXPORT,
            {"agent": {"requests_in_window": 600, "window_seconds": 60}},
            "deny",
            "L6.rate_limit_exceeded",
        ),
    ],
)
def test_gate_state_changes_the_decision(
    decider: Decider, body: dict[str, Any], state: dict[str, Any], decision: str, rule: str | None
) -> None:
    """Approvals, queue load, stops, callers, session history and quotas in `state` decide."""
    result = decide_with_state(decider, body, state)
    assert result["decision"] == decision, result["reasons"]
    if rule is not None:
        assert rule in {reason["rule"] for reason in result["reasons"]}
    if decision == "require_hitl":
        assert result["approvers_required"] == 2


def test_unknown_kind_is_denied_by_the_policy(decider: Decider) -> None:
    """A kind the request model does not know is still denied by the policy itself."""
    result = decider.decide({"kind": "tool_install", "subject": {"id": AGENT + "coder"}})
    assert result["decision"] == "deny"
    assert "CL.unknown_request_kind" in {reason["rule"] for reason in result["reasons"]}
