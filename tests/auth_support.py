"""Shared pieces of the auth, approval, state and shadow tests: a bundle, principals, settings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from maestro_gate.config import Settings
from maestro_gate.core.decision.callers import AGENT, APPROVER, AUDITOR, POLICY_ADMIN
from maestro_gate.wiring import sqlite_path
from tests.conftest import write_bundle
from tests.credentials import EVERYTHING, key_header, write_keys_file

ANALYST = "spiffe://corp.example/agent/analyst"
CODER = "spiffe://corp.example/agent/coder"

# Denies shell.exec (L3) and net.scan (L4); escalates irreversible actions (2 approvers, L6) and
# payments.refund (1 approver, L2); echoes `input.state` back as an obligation's params.
GATE_REGO = """package maestro.decision

import rego.v1

deny contains r if {
  input.action == "shell.exec"
  r := {"rule": "L3.tool_not_allowlisted", "layer": "l3_agent_frameworks",
        "threats": ["T2"], "message": "shell.exec is not allowlisted"}
}

deny contains r if {
  input.action == "net.scan"
  r := {"rule": "L4.network_scan", "layer": "l4_deployment_infrastructure",
        "threats": ["T2"], "message": "network scans are not allowed"}
}

hitl contains r if {
  input.reversible == false
  r := {"rule": "L6.irreversible_action", "layer": "l6_security_compliance",
        "threats": ["T7"], "message": "irreversible action needs two approvers", "approvers": 2}
}

hitl contains r if {
  input.action == "payments.refund"
  r := {"rule": "L2.refund_review", "layer": "l2_data_operations",
        "threats": ["T7"], "message": "refunds need one approver", "approvers": 1}
}

layer_names := {"l1_foundation_models", "l2_data_operations", "l3_agent_frameworks",
  "l4_deployment_infrastructure", "l5_evaluation_observability", "l6_security_compliance",
  "l7_agent_ecosystem", "cross_layer"}

verdict(layer) := "deny" if {
  some r in deny
  r.layer == layer
} else := "require_hitl" if {
  some r in hitl
  r.layer == layer
} else := "allow"

layers := {l: verdict(l) | some l in layer_names}

# now_ns is above 2^53, which RFC 8785 (the audit record bytes) cannot carry: echo its type.
echoed := object.union(object.remove(input.state, {"now_ns"}),
  {"now_ns": type_name(input.state.now_ns)})

echo := [{"rule": "L5.state_echo", "layer": "l5_evaluation_observability", "threats": [],
  "message": "the state the policy saw", "type": "echo", "params": echoed}]

result := {"decision": "deny", "reasons": [r | some r in deny], "obligations": echo,
  "layers": layers, "approvers_required": 0} if count(deny) > 0

result := {"decision": "require_hitl", "reasons": [r | some r in hitl], "obligations": echo,
  "layers": layers, "approvers_required": max({r.approvers | some r in hitl})} if {
  count(deny) == 0
  count(hitl) > 0
}

result := {"decision": "allow", "reasons": [], "obligations": echo, "layers": layers,
  "approvers_required": 0} if {
  count(deny) == 0
  count(hitl) == 0
}
"""

PRINCIPALS: dict[str, tuple[list[str], list[str]]] = {
    "runtime": ([AGENT], [ANALYST]),
    "coder-runtime": ([AGENT], [CODER]),
    "alice": ([APPROVER], []),
    "bob": ([APPROVER], []),
    "carol": ([APPROVER, AGENT], [ANALYST]),
    "auditor": ([AUDITOR], []),
    "admin": ([POLICY_ADMIN], []),
    "root": ([*EVERYTHING[0]], [*EVERYTHING[1]]),
}


def gate_bundle(root: Path, revision: str = "gate-1", data: dict[str, Any] | None = None) -> Path:
    """The test bundle above, written to `root`."""
    return write_bundle(
        root, {"maestro/decision/decision.rego": GATE_REGO}, revision=revision, data=data
    )


def gate_settings(tmp_path: Path, **overrides: Any) -> tuple[Settings, dict[str, dict[str, str]]]:
    """Settings on tmp_path with the test bundle and a keys file; the headers of each principal."""
    keys = write_keys_file(tmp_path / "keys.json", PRINCIPALS)
    values: dict[str, Any] = {
        "bundle_dir": tmp_path / "bundle",
        "audit_dsn": f"sqlite:///{tmp_path / 'audit.db'}",
        "checkpoint_key_file": tmp_path / "checkpoint.key",
        "audit_synchronous": "NORMAL",
        "api_keys_file": tmp_path / "keys.json",
        "dev_key_file": tmp_path / "dev-api-key",
        "catalog_dir": None,
        "controls_refresh_s": 0,
    }
    if not (tmp_path / "bundle").exists():
        gate_bundle(tmp_path / "bundle")
    values.update(overrides)
    return Settings.model_validate(values), {n: key_header(k) for n, k in keys.items()}


def act(tool: str = "web.search", subject: str = ANALYST, **extra: Any) -> dict[str, Any]:
    """An agent_action request body."""
    body: dict[str, Any] = {
        "kind": "agent_action",
        "subject": {"id": subject, "session_id": "s-1"},
        "action": tool,
        "context": {"trace_id": "trace-1"},
    }
    body.update(extra)
    return body


def records(settings: Settings) -> list[dict[str, Any]]:
    """Every audit record body, in index order."""
    with sqlite3.connect(sqlite_path(settings.audit_dsn)) as conn:
        rows = conn.execute("SELECT record FROM audit_records ORDER BY idx").fetchall()
    return [json.loads(r[0]) for r in rows]


def events(settings: Settings, type: str) -> list[dict[str, Any]]:
    """Audit records of one event type."""
    return [r for r in records(settings) if r["type"] == type]


def echoed_state(response: dict[str, Any]) -> dict[str, Any]:
    """The `input.state` the test bundle echoed into its obligation."""
    [echo] = [o for o in response["obligations"] if o["rule"] == "L5.state_echo"]
    state: dict[str, Any] = echo["params"]
    return state
