"""Asking the enforced policy: candidate requests built from the registry, evaluated on an engine.

The reports never re-implement a rule. A candidate is the most favourable well-formed request
an agent could send (a trace and task id, a session, its own run location, a sandbox, the
tool's own hosts,
no secrets declared as read, arguments that meet its grant's constraints and, as the gate's own
check of a tool's registry `input_schema` would find them, its schema), so what the policy
refuses it refuses for a reason of substance. Each candidate is evaluated with a quiet state
(nothing observed, no pending approval, no emergency stop) after the request model validated it
and filled in its defaults, exactly as for a body of `POST /v1/decide`. A `Prober` counts its
evaluations, stops at a bound on their number and on time, and says what it cut.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.core.decision.ports import PolicyEngine, empty_state
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.core.errors import GateError
from maestro_gate.posture.registry_view import Registry

Hop = dict[str, Any]
TRACE = "posture-probe"
# A session of its own: a store kept per session is used only inside one (L3.cross_session_read).
SESSION = "posture-probe"
PROBE_TTL_S = 3600


@dataclass(frozen=True)
class Verdict:
    """The policy's answer to one candidate: decision and the rules behind it."""

    decision: str
    rules: list[str]

    def as_json(self) -> dict[str, Any]:
        """`{decision, rules}`."""
        return {"decision": self.decision, "rules": self.rules}


CUT = Verdict("not_evaluated", [])


@dataclass
class Prober:
    """Evaluates candidates on `engine`, at most `max_evaluations` of them within `max_seconds`."""

    engine: PolicyEngine
    max_evaluations: int = 20_000
    max_seconds: float = 30.0
    timeout_s: float = 2.0
    window_s: int = 60
    concurrency: int = 4
    evaluations: int = 0
    cut: int = 0
    cut_examples: list[str] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    _started: float = field(default_factory=time.perf_counter)

    def exhausted(self) -> bool:
        """True once the bound on evaluations or time is reached."""
        elapsed = time.perf_counter() - self._started
        return self.evaluations >= self.max_evaluations or elapsed >= self.max_seconds

    async def ask(self, request: dict[str, Any]) -> Verdict:
        """The policy's verdict on one candidate, or CUT (counted) once the bound is reached."""
        if self.exhausted():
            self.cut += 1
            if len(self.cut_examples) < 10:
                self.cut_examples.append(describe(request))
            return CUT
        self.evaluations += 1
        try:
            document = as_decided(request)
            state = self.state()
            if document.get("kind") == "agent_action":  # arguments the schema check passes
                state["arguments"] = {"tool": document["action"], "valid": True, "errors": []}
            raw = await self.engine.evaluate({**document, "state": state}, self.timeout_s)
        except GateError as exc:  # the gate would deny this request: so does the report
            self.errors += 1
            if len(self.error_examples) < 10:
                self.error_examples.append(f"{describe(request)}: {exc.message}")
            return Verdict("deny", [f"GATE.{exc.code}"])
        value = raw.value if isinstance(raw.value, dict) else {}
        reasons = value.get("reasons") or []
        rules = sorted({str(r.get("rule")) for r in reasons if isinstance(r, dict)})
        return Verdict(str(value.get("decision", "deny")), rules)

    async def ask_all(self, requests: list[dict[str, Any]]) -> list[Verdict]:
        """Verdicts for `requests`, in order, a few evaluations in flight at a time."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(request: dict[str, Any]) -> Verdict:
            async with gate:
                return await self.ask(request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def state(self) -> dict[str, Any]:
        """A quiet `input.state`: nothing observed, nothing pending, no emergency stop."""
        state = empty_state(self.window_s)
        state["now_ns"] = time.time_ns()
        state["pending_approvals"] = 0
        state["emergency_stop"] = {"agents": [], "classes": []}
        return state

    def bound(self) -> dict[str, Any]:
        """What the bound allowed and what it cut."""
        return {
            "max_evaluations": self.max_evaluations,
            "max_seconds": self.max_seconds,
            "evaluations": self.evaluations,
            "cut": self.cut,
            "complete": self.cut == 0,
            "cut_examples": self.cut_examples,
            "engine_errors": self.errors,
            "engine_error_examples": self.error_examples,
        }


def as_decided(request: dict[str, Any]) -> dict[str, Any]:
    """The candidate as the gate would hand it to the policy: validated by the request model,
    defaults filled in (`execution.secrets`, `reversible`, ...), as `POST /v1/decide` does."""
    return REQUEST_ADAPTER.validate_python(request).model_dump(mode="json", exclude_none=True)


def describe(request: dict[str, Any]) -> str:
    """A one-line name of a candidate: `agent kind target`."""
    subject = request["subject"]["id"]
    kind = request["kind"]
    if kind == "agent_action":
        return f"{subject} calls {request['action']}"
    if kind == "delegation":
        return f"{subject} delegates to {request['delegatee']}"
    return (
        f"{subject} {request['operation']} {request['source']['type']}:{request['source']['id']}"
        f" -> {request['destination']['type']}:{request['destination']['id']}"
    )


def context(chain: list[Hop]) -> dict[str, Any]:
    """The candidate's context: a trace, a task and the delegation chain that led here."""
    found: dict[str, Any] = {"trace_id": TRACE, "task_id": TRACE}
    if chain:
        found["delegation_chain"] = chain
    return found


def tool_call(registry: Registry, agent: str, tool: str, chain: list[Hop]) -> dict[str, Any]:
    """`agent` calling `tool` as favourably as its grant and the tool's entry allow."""
    entry = registry.agents.get(agent, {})
    spec = registry.tools.get(tool, {})
    grant = entry.get("tools", {}).get(tool, {}) if isinstance(entry.get("tools"), dict) else {}
    hosts = [str(h) for h in spec.get("hosts", []) if isinstance(h, str)]
    # Secrets declared, as none: a tool that reads secrets is refused when they are left out.
    execution: dict[str, Any] = {"sandbox": True, "egress": hosts, "secrets": []}
    if entry.get("location") in ("local", "cloud"):
        execution["location"] = entry["location"]
    request: dict[str, Any] = {
        "kind": "agent_action",
        "subject": {"id": agent, "session_id": SESSION},
        "action": tool,
        "arguments": arguments(grant, spec, hosts),
        "execution": execution,
        "context": context(chain),
    }
    if spec.get("server") and spec.get("description_digest"):
        request["tool"] = {"server": spec["server"], "digest": spec["description_digest"]}
    if spec.get("risk_class") == "irreversible":
        request["reversible"] = False
    return request


def arguments(grant: Any, spec: dict[str, Any], hosts: list[str]) -> dict[str, Any]:
    """Arguments meeting the grant's constraints: an allowed value, a permitted prefix."""
    found: dict[str, Any] = {}
    constraints = grant.get("args", {}) if isinstance(grant, dict) else {}
    for name, rule in constraints.items() if isinstance(constraints, dict) else ():
        if not isinstance(rule, dict):
            continue
        if rule.get("allowed"):
            found[name] = rule["allowed"][0]
        elif rule.get("prefixes"):
            found[name] = f"{rule['prefixes'][0]}{hosts[0] if hosts else 'example.org'}/"
        elif "max" in rule:
            found[name] = rule["max"]
        elif rule.get("required"):
            found[name] = "posture-probe"
    for name in spec.get("url_args", []) or []:
        if isinstance(name, str) and name not in found:
            found[name] = f"https://{hosts[0] if hosts else 'example.org'}/"
    return found


def movement(
    agent: str,
    source: tuple[str, str],
    destination: tuple[str, str],
    operation: str,
    classification: str,
    tenant: str | None,
    chain: list[Hop],
) -> dict[str, Any]:
    """A data movement by `agent` of data at `classification` from `source` to `destination`."""
    data: dict[str, Any] = {"classification": classification}
    if tenant is not None:
        data["tenant"] = tenant
    return {
        "kind": "data_movement",
        "subject": {"id": agent, "session_id": SESSION},
        "data": data,
        "source": {"type": source[0], "id": source[1]},
        "destination": {"type": destination[0], "id": destination[1]},
        "operation": operation,
        "context": context(chain),
    }


def delegation(agent: str, delegatee: str, scopes: list[str], chain: list[Hop]) -> dict[str, Any]:
    """`agent` handing `delegatee` a task with `scopes`."""
    return {
        "kind": "delegation",
        "subject": {"id": agent, "session_id": SESSION},
        "delegatee": delegatee,
        "task": {"goal": "posture probe", "scopes": sorted(scopes)},
        "ttl_seconds": PROBE_TTL_S,
        "context": context(chain),
    }


def hop(delegator: str, delegatee: str, scopes: list[str]) -> Hop:
    """One hop of a delegation chain."""
    return {
        "delegator": delegator,
        "delegatee": delegatee,
        "scopes": sorted(scopes),
        "ttl_seconds": PROBE_TTL_S,
    }
