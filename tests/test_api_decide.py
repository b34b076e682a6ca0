"""`POST /v1/decide` over the real app: real engine, real SQLite audit, lifespan running."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.core.ledger.verify import verify_log
from maestro_gate.wiring import sqlite_path
from tests.conftest import (
    CONTRACT_PROBE,
    EVERY_LAYER_ALLOWS,
    action,
    live_client,
    make_settings,
    write_bundle,
)

# Each keeps the decision contract on its probe requests, so it activates, and misbehaves on
# every other request: what the decision point must still fail closed on at run time.
PROBED = f"""package maestro.decision

import rego.v1

{EVERY_LAYER_ALLOWS}
{CONTRACT_PROBE}
result := {{"decision": "allow", "reasons": [], "obligations": [], "layers": every_layer_allows}}
  if contract_probe
"""

SLOW_REGO = (
    PROBED
    + """
result := {"decision": "allow", "reasons": [], "obligations": [], "layers": {}} if {
  not contract_probe
  count([1 | some i in numbers.range(1, 1000000)]) > 0
}
"""
)

ERROR_REGO = (
    PROBED
    + """
result := {"decision": "allow", "reasons": [], "obligations": [], "layers": {}} if {
  not contract_probe
  to_number(input.action) > 0
}
"""
)

MALFORMED_REGO = (
    PROBED
    + """
result := {"decision": "maybe", "reasons": []} if not contract_probe
"""
)


def records(client: TestClient) -> int:
    """Number of audit records the running app's log holds."""
    return int(client.get("/v1/status").json()["audit"]["records"])


def test_allow_returns_the_documented_response_and_is_audited(client: TestClient) -> None:
    """An allowed action answers 200 with decision, policy, layers and an audit reference."""
    response = client.post("/v1/decide", json=action())
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] == "allow"
    assert body["reasons"] == []
    assert body["mode"] == "enforce"
    assert body["policy"]["revision"] == "test-1"
    assert body["policy"]["digest"].startswith("sha256:")
    assert body["policy"]["engine"] == "embedded"
    assert body["audit"]["index"] == 0
    assert len(body["audit"]["leaf_hash"]) == 64
    assert records(client) == 1


def test_deny_names_rule_layer_and_threat(client: TestClient) -> None:
    """A denied action is a 200 whose reasons name the rule, the MAESTRO layer and the threat."""
    body = client.post("/v1/decide", json=action("shell.exec")).json()
    assert body["decision"] == "deny"
    assert body["reasons"] == [
        {
            "rule": "L3.tool_not_allowlisted",
            "layer": "l3_agent_frameworks",
            "threats": ["T2"],
            "message": "tool shell.exec is not allowlisted",
        }
    ]
    assert {k: v for k, v in body["layers"].items() if v != "allow"} == {
        "l3_agent_frameworks": "deny"
    }


def test_require_hitl_is_returned_for_escalations(client: TestClient) -> None:
    """An escalating rule yields require_hitl with its reason."""
    body = client.post("/v1/decide", json=action("payments.send", reversible=False)).json()
    assert body["decision"] == "require_hitl"
    assert body["reasons"][0]["rule"] == "L6.irreversible_action"


def test_all_three_kinds_are_decided(client: TestClient) -> None:
    """data_movement and delegation requests are decided and audited like actions."""
    movement = {
        "kind": "data_movement",
        "subject": {"id": "spiffe://corp.example/agent/analyst"},
        "data": {"classification": "internal"},
        "source": {"type": "store", "id": "crm"},
        "destination": {"type": "agent", "id": "spiffe://corp.example/agent/reporter"},
        "operation": "read",
    }
    delegation = {
        "kind": "delegation",
        "subject": {"id": "spiffe://corp.example/agent/orchestrator"},
        "delegatee": "spiffe://corp.example/agent/analyst",
        "task": {"goal": "summarise Q3", "scopes": ["crm:read"]},
        "ttl_seconds": 300,
    }
    for body in (movement, delegation):
        response = client.post("/v1/decide", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["decision"] == "allow"
    assert records(client) == 2


def test_every_decision_is_in_a_chain_that_verifies(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    """Decisions extend one hash chain, each record naming its decision_id, and it verifies."""
    ids = [client.post("/v1/decide", json=action(t)).json()["decision_id"] for t in ("a", "b", "c")]
    log = SqliteAuditLog(sqlite_path(settings.audit_dsn))
    rows = list(log.rows())
    assert [json.loads(r[2])["decision_id"] for r in rows] == ids
    assert verify_log(log.verifier_rows()).ok


def test_decision_is_in_the_record_with_input_hash(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    """The record carries kind, subject, decision, rules, policy and the input's SHA-256."""
    client.post("/v1/decide", json=action("shell.exec"))
    [(_, _, data)] = list(SqliteAuditLog(sqlite_path(settings.audit_dsn)).rows())
    record = json.loads(data)
    assert record["schema"] == 2  # with the state the policy saw
    assert record["state"]["agent"]["window_seconds"] == 60
    assert record["state"]["now_ns"].isdigit()
    assert record["kind"] == "agent_action"
    assert record["subject"] == "spiffe://corp.example/agent/analyst"
    assert record["decision"] == "deny"
    assert record["rules"] == ["L3.tool_not_allowlisted"]
    assert record["policy"]["revision"] == "test-1"
    assert len(record["input_sha256"]) == 64
    assert record["input"]["action"] == "shell.exec"


def test_masked_fields_are_hidden_in_the_record(tmp_path: Path, bundle: Path) -> None:
    """Configured JSON pointers are masked in the stored input; the hash covers the original."""
    settings = make_settings(tmp_path, bundle, audit_mask=["/arguments/password"])
    with live_client(settings) as client:
        client.post("/v1/decide", json=action(arguments={"password": "hunter2", "user": "a"}))
    [(_, _, data)] = list(SqliteAuditLog(sqlite_path(settings.audit_dsn)).rows())
    record = json.loads(data)
    assert record["input"]["arguments"] == {"password": "***", "user": "a"}
    assert b"hunter2" not in data


def test_engine_timeout_denies_and_service_stays_responsive(tmp_path: Path) -> None:
    """An evaluation past its deadline is a deny naming the timeout; health still answers."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/decision.rego": SLOW_REGO})
    settings = make_settings(tmp_path, bundle, decision_timeout_ms=50)
    with live_client(settings) as client:
        body = client.post("/v1/decide", json=action()).json()
        assert body["decision"] == "deny"
        assert body["reasons"][0]["rule"] == "GATE.engine_timeout"
        assert client.get("/health").status_code == 200
        assert records(client) == 1


def test_engine_error_denies_with_reason(tmp_path: Path) -> None:
    """A strict built-in error during evaluation is a deny naming the engine error."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/decision.rego": ERROR_REGO})
    with live_client(make_settings(tmp_path, bundle)) as client:
        body = client.post("/v1/decide", json=action("not-a-number")).json()
    assert body["decision"] == "deny"
    assert body["reasons"][0]["rule"] == "GATE.engine_error"


def test_malformed_policy_result_denies(tmp_path: Path) -> None:
    """A policy result of the wrong shape is a deny, never an allow."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/decision.rego": MALFORMED_REGO})
    with live_client(make_settings(tmp_path, bundle)) as client:
        body = client.post("/v1/decide", json=action()).json()
    assert body["decision"] == "deny"
    assert body["reasons"][0]["rule"] == "GATE.malformed_policy_result"


def test_missing_bundle_denies_and_is_not_ready(tmp_path: Path) -> None:
    """With no bundle the gate is not ready and every decision is an audited deny."""
    with live_client(make_settings(tmp_path, tmp_path / "absent")) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["bundle_active"] is False
        body = client.post("/v1/decide", json=action()).json()
        assert body["decision"] == "deny"
        assert body["reasons"][0]["rule"] == "GATE.no_active_bundle"
        assert records(client) == 1


def test_unsupported_builtin_is_refused_naming_it_and_the_file(tmp_path: Path) -> None:
    """A bundle calling a built-in the engine lacks never activates; status names it."""
    rego = DECISION_WITH_CIDR
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/decision.rego": rego})
    with live_client(make_settings(tmp_path, bundle)) as client:
        status = client.get("/v1/status").json()
        body = client.post("/v1/decide", json=action()).json()
    assert status["bundle"] is None
    assert "net.cidr_contains" in status["last_reload_error"]
    assert "maestro/decision/decision.rego" in status["last_reload_error"]
    assert body["decision"] == "deny"


DECISION_WITH_CIDR = """package maestro.decision

import rego.v1

result := {"decision": "allow", "reasons": [], "obligations": [], "layers": {}} if {
  not net.cidr_contains("10.0.0.0/8", input.context.attributes.ip)
}
"""


def test_audit_failure_answers_503_and_never_allow(client: TestClient) -> None:
    """When the audit log cannot record, the caller gets 503 audit_unavailable, not a decision."""
    client.app.state.gate.audit.close()  # type: ignore[attr-defined]
    response = client.post("/v1/decide", json=action())
    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert "decision" not in response.json()
    assert client.get("/ready").status_code == 503


def test_metrics_count_decisions_by_kind_and_decision(client: TestClient) -> None:
    """/metrics counts decisions by kind, decision and mode and has the latency histogram."""
    client.post("/v1/decide", json=action())
    client.post("/v1/decide", json=action("shell.exec"))
    text = client.get("/metrics").text
    assert (
        'maestro_decisions_total{decision="allow",kind="agent_action",mode="enforce"} 1.0' in text
    )
    assert 'maestro_decisions_total{decision="deny",kind="agent_action",mode="enforce"} 1.0' in text
    assert "maestro_decision_latency_seconds_bucket" in text
    assert 'maestro_rule_hits_total{rule="L3.tool_not_allowlisted"} 1.0' in text


def test_health_and_ready(client: TestClient) -> None:
    """/health answers while alive; /ready is 200 with a bundle and a writable log."""
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready"
    assert all(ready["checks"].values())
