"""Both engines give the same decision for the same bundle and input (DESIGN §6).

Every scenario in tests/scenarios/*.json, plus a few built in here, goes through a DecisionPoint
on the embedded engine and one on the OPA engine (over loopback HTTP to the OPA stand-in), both
with the bundle in policies/. Decisions, reasons, layers and obligations must be identical.
The stand-in evaluates with OPA's own engine (opa-inprocess), so this pins the OPA adapter and
the documents on the wire as well as rego-cpp against OPA; test_engine_semantics.py holds the
engines to each other on far more inputs and on the Rego unit tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.api.decide import parse_request
from maestro_gate.approvals.sqlite import SqliteApprovalStore
from maestro_gate.core.decision.arguments import ToolSchemas
from maestro_gate.core.decision.budgets import Reservation
from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.point import DecisionPoint
from maestro_gate.core.decision.ports import AuditReceipt, PolicyEngine, empty_state
from maestro_gate.core.decision.requests import AnyRequest
from maestro_gate.engine.bundle import Bundle, read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.opa import OpaEngine
from maestro_gate.metrics import PrometheusMetrics
from tests.conftest import POLICIES
from tests.opa_standin import OpaStandIn
from tests.scenario_history import session_state

SCENARIOS = Path(__file__).parent / "scenarios"
COLLECTOR = "spiffe://corp.example/agent/collector-web"

BUILT_IN: dict[str, dict[str, Any]] = {
    "builtin/web_search_within_limits": {
        "request": {
            "kind": "agent_action",
            "subject": {"id": COLLECTOR},
            "action": "web_search",
            "arguments": {"max_results": 5},
        },
        "expect": {"decision": "allow", "rules": []},
    },
    "builtin/unregistered_agent": {
        "request": {
            "kind": "agent_action",
            "subject": {"id": "spiffe://corp.example/agent/ghost"},
            "action": "web_search",
        },
        "expect": {"decision": "deny", "rules": ["L7.unregistered_agent"]},
    },
    "builtin/argument_over_limit": {
        "request": {
            "kind": "agent_action",
            "subject": {"id": COLLECTOR},
            "action": "web_search",
            "arguments": {"max_results": 500},
        },
        "expect": {"decision": "deny", "rules": ["L3.tool_argument_violation"]},
    },
    "builtin/delegation_against_topology": {
        "request": {
            "kind": "delegation",
            "subject": {"id": COLLECTOR},
            "delegatee": "spiffe://corp.example/agent/orchestrator",
            "task": {"goal": "re-plan the run", "scopes": ["web:read"]},
            "ttl_seconds": 600,
            "context": {"trace_id": "t-1", "task_id": "task-1"},
        },
        "expect": {"decision": "deny"},
    },
    "builtin/data_copy_to_agent": {
        "request": {
            "kind": "data_movement",
            "subject": {"id": "spiffe://corp.example/agent/orchestrator"},
            "data": {"classification": "internal"},
            "source": {"type": "store", "id": "web-cache"},
            "destination": {"type": "agent", "id": "spiffe://corp.example/agent/reporter"},
            "operation": "copy",
            "context": {"trace_id": "t-2", "task_id": "task-2"},
        },
        "expect": {},
    },
}


def scenarios() -> dict[str, dict[str, Any]]:
    """Scenario fixtures by name: each file holds one `{request, expect, state?, history?}` or a
    list; a `history` becomes the session state the gate records (tests/scenario_history.py)."""
    found = dict(BUILT_IN)
    for path in sorted(SCENARIOS.glob("*.json")):
        loaded = json.loads(path.read_text())
        items = loaded if isinstance(loaded, list) else [loaded]
        for i, item in enumerate(items):
            found[path.stem if len(items) == 1 else f"{path.stem}[{i}]"] = item
    return found


class ScenarioState:
    """A StateSource answering each request with the scenario's `state`, else a quiet history."""

    def __init__(self) -> None:
        self.current: dict[str, Any] = {}

    def reservation(self, request: AnyRequest, cost: float) -> Reservation:
        """A hold that nothing keeps."""
        return Reservation(agent=request.subject.id, period=0, cost=cost)

    async def snapshot(
        self, request: AnyRequest, reservation: Reservation | None = None
    ) -> dict[str, Any]:
        """No requests, spend or session history yet, unless the scenario says otherwise."""
        return {**empty_state(window_seconds=60), **self.current}

    async def observe(
        self, request: AnyRequest, decision: str, reservation: Reservation | None = None
    ) -> None:
        """Nothing accumulates: every scenario starts from the same state."""

    async def release(self, reservation: Reservation) -> None:
        """Nothing was held."""


class MemoryAudit:
    """An AuditLog that keeps records in a list: the audit is not what this suite compares."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def append(self, record: dict[str, Any]) -> AuditReceipt:
        """Keep the record; the leaf hash is a placeholder."""
        self.records.append(record)
        return AuditReceipt(index=len(self.records) - 1, leaf_hash="0" * 64)

    async def size(self) -> int:
        """Number of records kept."""
        return len(self.records)

    async def writable(self) -> bool:
        """Always writable."""
        return True


@dataclass
class Engines:
    """One event loop running a DecisionPoint per engine over the same bundle."""

    runner: asyncio.Runner
    bundle: Bundle
    state: ScenarioState
    embedded: DecisionPoint
    opa: DecisionPoint

    def decide(self, scenario: dict[str, Any]) -> tuple[DecisionResponse, DecisionResponse]:
        """Decide the scenario's request with both engines, in the scenario's state."""
        self.state.current = scenario.get("state", session_state(scenario))
        parsed = parse_request(scenario["request"])
        return (
            self.runner.run(self.embedded.decide(parsed)),
            self.runner.run(self.opa.decide(parsed)),
        )


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """Embedded and OPA DecisionPoints on policies/, the OPA one talking to the stand-in."""
    tmp = tmp_path_factory.mktemp("conformance")
    stores = [SqliteApprovalStore(tmp / f"approvals-{n}.db") for n in ("embedded", "opa")]
    bundle = read_bundle(POLICIES)
    embedded = EmbeddedEngine(workers=1)
    embedded.load(bundle)
    state = ScenarioState()

    def point(engine: PolicyEngine, approvals: SqliteApprovalStore) -> DecisionPoint:
        return DecisionPoint(
            engine,
            MemoryAudit(),
            PrometheusMetrics(),
            timeout_s=5,
            state=state,
            approvals=approvals,
            argument_check=ToolSchemas(bundle.data).check,
        )

    with OpaStandIn(bundle) as standin, asyncio.Runner() as runner:
        opa = OpaEngine(standin.url)
        runner.run(opa.open())
        for store in stores:
            runner.run(store.start())
        try:
            yield Engines(
                runner=runner,
                bundle=bundle,
                state=state,
                embedded=point(embedded, stores[0]),
                opa=point(opa, stores[1]),
            )
        finally:
            for store in stores:
                runner.run(store.close())
            runner.run(opa.close())
            embedded.close()


def verdict(response: DecisionResponse) -> dict[str, Any]:
    """The parts of a response both engines must agree on."""
    return {
        "decision": response.decision,
        "reasons": [r.model_dump() for r in response.reasons],
        "obligations": [o.model_dump() for o in response.obligations],
        "layers": response.layers,
    }


@pytest.mark.parametrize(("name", "scenario"), sorted(scenarios().items()))
def test_both_engines_decide_the_scenario_identically(
    engines: Engines, name: str, scenario: dict[str, Any]
) -> None:
    """The embedded engine and OPA give the same decision, reasons, obligations and layers."""
    embedded, opa = engines.decide(scenario)
    gate_rules = [r.rule for r in embedded.reasons + opa.reasons if r.rule.startswith("GATE.")]
    assert gate_rules == [], f"{name}: an engine failed instead of deciding: {embedded.reasons}"
    assert verdict(opa) == verdict(embedded)
    assert opa.policy.engine == "opa"
    assert opa.policy.revision == embedded.policy.revision == engines.bundle.revision
    expect = scenario.get("expect", {})
    if "decision" in expect:
        assert embedded.decision == expect["decision"]
    if "rules" in expect:
        assert set(expect["rules"]) <= {r.rule for r in embedded.reasons}
