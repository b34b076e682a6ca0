"""Human approvals end to end over HTTP: bound to the action, distinct approvers, single use."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.core.decision.approvals import action_digest
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.wiring import sqlite_path
from tests.auth_support import ANALYST, act, events, gate_bundle, gate_settings

IRREVERSIBLE = act("files.delete", reversible=False, arguments={"path": "/srv/reports"})


def _hitl(client: TestClient, headers: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/decide", json=body, headers=headers)
    assert response.status_code == 200, response.text
    decided: dict[str, Any] = response.json()
    assert decided["decision"] == "require_hitl"
    return decided


def _grant(client: TestClient, headers: dict[str, dict[str, str]], approval_id: str) -> None:
    for who in ("alice", "bob"):
        response = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers[who])
        assert response.status_code == 200, response.text


def _resubmit(body: dict[str, Any], approval_id: str, **changes: Any) -> dict[str, Any]:
    return {**body, "approval_id": approval_id, **changes}


def test_hitl_decision_creates_a_pending_approval_bound_to_the_action(tmp_path: Path) -> None:
    """require_hitl carries a ticket; the stored approval holds the action digest and revision."""
    settings, headers = gate_settings(tmp_path, approval_ttl_s=600)
    with TestClient(create_app(settings)) as client:
        decided = _hitl(client, headers["runtime"], IRREVERSIBLE)
        listed = client.get("/v1/approvals?status=pending", headers=headers["auditor"]).json()
    ticket = decided["approval"]
    assert (ticket["approvers_required"], ticket["status"]) == (2, "pending")
    assert ticket["approvals"] == 0
    [approval] = listed["approvals"]
    document = REQUEST_ADAPTER.validate_python(IRREVERSIBLE).model_dump(
        mode="json", exclude_none=True
    )
    assert approval["id"] == ticket["id"]
    assert approval["action_digest"] == action_digest(document)
    assert approval["bundle_revision"] == "gate-1"
    assert approval["requested_by"] == "runtime"
    assert approval["rules"] == ["L6.irreversible_action"]
    assert [e["detail"]["id"] for e in events(settings, "approval_created")] == [ticket["id"]]


def test_two_distinct_approvers_then_resubmission_allows_exactly_once(tmp_path: Path) -> None:
    """Two approvals grant; the re-submission is allowed once, then denied as used."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        first = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["alice"])
        early = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
        second = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["bob"])
        allowed = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
        again = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
        status = client.get(f"/v1/approvals/{approval_id}", headers=headers["runtime"]).json()
    assert (first.json()["status"], second.json()["status"]) == ("pending", "granted")
    assert (early["decision"], early["approval"]["id"]) == ("require_hitl", approval_id)
    assert allowed["decision"] == "allow"
    assert again["decision"] == "deny"
    assert [r["rule"] for r in again["reasons"]] == ["GATE.approval_used"]
    assert (status["status"], status["used_by"]) == ("used", allowed["decision_id"])
    assert [e["detail"]["by"] for e in events(settings, "approval_approved")] == ["alice", "bob"]
    [used] = events(settings, "approval_used")
    assert used["detail"]["decision_id"] == allowed["decision_id"]
    assert [v["principal"] for v in used["detail"]["votes"]] == ["alice", "bob"]
    assert len(events(settings, "approval_refused")) == 1


def test_requesting_agent_cannot_approve_its_own_action(tmp_path: Path) -> None:
    """An approver bound to the subject, or the requesting principal itself, gets 403."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        bound = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        by_bound = client.post(f"/v1/approvals/{bound}/approve", headers=headers["carol"])
        own = _hitl(client, headers["root"], act("db.drop", reversible=False))["approval"]["id"]
        by_requester = client.post(f"/v1/approvals/{own}/approve", headers=headers["root"])
        by_agent = client.post(f"/v1/approvals/{bound}/approve", headers=headers["runtime"])
    assert (by_bound.status_code, by_bound.json()["code"]) == (403, "self_approval")
    assert (by_requester.status_code, by_requester.json()["code"]) == (403, "self_approval")
    assert (by_agent.status_code, by_agent.json()["code"]) == (403, "forbidden")


def test_the_same_approver_twice_is_409(tmp_path: Path) -> None:
    """A second vote by one approver is refused: approvals need distinct people."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["alice"])
        twice = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["alice"])
        state = client.get(f"/v1/approvals/{approval_id}", headers=headers["alice"]).json()
    assert (twice.status_code, twice.json()["code"]) == (409, "already_voted")
    assert (state["status"], state["approvals"]) == ("pending", 1)


def test_expired_approval_denies_and_takes_no_votes(tmp_path: Path) -> None:
    """Past its expiry a granted approval denies the re-submission (fail closed), audited."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        _grant(client, headers, approval_id)
        with sqlite3.connect(sqlite_path(settings.audit_dsn)) as conn:
            conn.execute("UPDATE gate_approvals SET expires_at_ms = 0 WHERE id = ?", (approval_id,))
        denied = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
        late = client.post(f"/v1/approvals/{approval_id}/reject", headers=headers["auditor"])
        vote = client.post(f"/v1/approvals/{approval_id}/reject", headers=headers["carol"])
        listed = client.get("/v1/approvals?status=expired", headers=headers["alice"]).json()
    assert denied["decision"] == "deny"
    assert [r["rule"] for r in denied["reasons"]] == ["GATE.approval_expired"]
    assert late.status_code == 403
    assert vote.status_code == 403
    assert [a["id"] for a in listed["approvals"]] == [approval_id]
    assert len(events(settings, "approval_expired")) == 1


def test_expired_pending_approval_refuses_votes(tmp_path: Path) -> None:
    """A vote on an expired approval is 409 `approval_closed`."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        with sqlite3.connect(sqlite_path(settings.audit_dsn)) as conn:
            conn.execute("UPDATE gate_approvals SET expires_at_ms = 0 WHERE id = ?", (approval_id,))
        vote = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["alice"])
    assert (vote.status_code, vote.json()["code"]) == (409, "approval_closed")


def test_tampered_request_with_the_approval_id_is_denied(tmp_path: Path) -> None:
    """Changing the action after approval denies it; the approval stays usable for the original."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        _grant(client, headers, approval_id)
        tampered = _resubmit(IRREVERSIBLE, approval_id, arguments={"path": "/"})
        denied = client.post("/v1/decide", json=tampered, headers=headers["runtime"]).json()
        original = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
    assert denied["decision"] == "deny"
    assert [r["rule"] for r in denied["reasons"]] == ["GATE.approval_mismatch"]
    assert original["decision"] == "allow"


def test_unknown_approval_id_is_a_mismatch_deny(tmp_path: Path) -> None:
    """An approval id the gate never issued cannot authorise anything."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        body = _resubmit(IRREVERSIBLE, "00000000-0000-0000-0000-000000000000")
        denied = client.post("/v1/decide", json=body, headers=headers["runtime"]).json()
    assert [r["rule"] for r in denied["reasons"]] == ["GATE.approval_mismatch"]


def test_volatile_fields_do_not_change_the_action(tmp_path: Path) -> None:
    """A new request_id, trace_id and timestamp on the re-submission still match."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        _grant(client, headers, approval_id)
        fresh = _resubmit(
            IRREVERSIBLE,
            approval_id,
            request_id="retry-2",
            context={"trace_id": "trace-2", "timestamp": "2030-01-01T00:00:00Z"},
        )
        allowed = client.post("/v1/decide", json=fresh, headers=headers["runtime"]).json()
    assert allowed["decision"] == "allow"


def test_rejected_approval_denies_the_resubmission(tmp_path: Path) -> None:
    """One rejection closes the approval; the re-submission is denied."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["alice"])
        rejected = client.post(
            f"/v1/approvals/{approval_id}/reject",
            json={"comment": "not during the freeze"},
            headers=headers["bob"],
        ).json()
        denied = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
    assert rejected["status"] == "rejected"
    assert rejected["votes"][1]["comment"] == "not during the freeze"
    assert [r["rule"] for r in denied["reasons"]] == ["GATE.approval_rejected"]
    assert len(events(settings, "approval_rejected")) == 1


def test_a_new_bundle_revision_invalidates_the_approval(tmp_path: Path) -> None:
    """An approval granted under one bundle revision does not authorise under another."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        _grant(client, headers, approval_id)
        gate_bundle(tmp_path / "bundle", revision="gate-2")
        assert client.post("/v1/admin/bundle/reload", headers=headers["admin"]).status_code == 200
        denied = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
    assert [r["rule"] for r in denied["reasons"]] == ["GATE.approval_mismatch"]


def test_one_approver_suffices_when_the_policy_asks_for_one(tmp_path: Path) -> None:
    """`approvers` on the hitl reason sets how many distinct approvers are needed."""
    settings, headers = gate_settings(tmp_path)
    refund = act("payments.refund", arguments={"order": "A-17"})
    with TestClient(create_app(settings)) as client:
        ticket = _hitl(client, headers["runtime"], refund)["approval"]
        granted = client.post(f"/v1/approvals/{ticket['id']}/approve", headers=headers["bob"])
        allowed = client.post(
            "/v1/decide", json=_resubmit(refund, ticket["id"]), headers=headers["runtime"]
        ).json()
    assert ticket["approvers_required"] == 1
    assert granted.json()["status"] == "granted"
    assert allowed["decision"] == "allow"


def test_approvals_survive_a_restart(tmp_path: Path) -> None:
    """Approvals are durable in the audit database: a new process lists and honours them."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        _grant(client, headers, approval_id)
    with TestClient(create_app(settings)) as client:
        listed = client.get("/v1/approvals?status=granted", headers=headers["auditor"]).json()
        allowed = client.post(
            "/v1/decide", json=_resubmit(IRREVERSIBLE, approval_id), headers=headers["runtime"]
        ).json()
    assert [a["id"] for a in listed["approvals"]] == [approval_id]
    assert allowed["decision"] == "allow"


def test_an_agent_reads_only_its_own_approvals(tmp_path: Path) -> None:
    """The requesting agent may poll its approval; another agent may not."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], IRREVERSIBLE)["approval"]["id"]
        own = client.get(f"/v1/approvals/{approval_id}", headers=headers["runtime"])
        other = client.get(f"/v1/approvals/{approval_id}", headers=headers["coder-runtime"])
        missing = client.get("/v1/approvals/nope", headers=headers["alice"])
    assert (own.status_code, own.json()["subject"]) == (200, ANALYST)
    assert other.status_code == 403
    assert missing.status_code == 404


def test_pending_approvals_are_counted_for_policies_and_metrics(tmp_path: Path) -> None:
    """`input.state.pending_approvals` and `maestro_pending_approvals` count open approvals."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        _hitl(client, headers["runtime"], IRREVERSIBLE)
        _hitl(client, headers["runtime"], act("payments.refund"))
        state = client.post("/v1/decide", json=act(), headers=headers["runtime"]).json()
        metrics = client.get("/metrics").text
    assert state["obligations"][0]["params"]["pending_approvals"] == 2
    assert "maestro_pending_approvals 2.0" in metrics


def test_an_approval_covers_only_the_model_digest_that_asked(tmp_path: Path) -> None:
    """T48: the approval is bound to the asking model's digest; another digest is a mismatch."""
    asked = {**IRREVERSIBLE, "model": {"id": "planner", "digest": "sha256:" + "a" * 64}}
    other = {**asked, "model": {"id": "planner", "digest": "sha256:" + "b" * 64}}
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        approval_id = _hitl(client, headers["runtime"], asked)["approval"]["id"]
        _grant(client, headers, approval_id)
        drifted = client.post(
            "/v1/decide", json=_resubmit(other, approval_id), headers=headers["runtime"]
        ).json()
        same = client.post(
            "/v1/decide", json=_resubmit(asked, approval_id), headers=headers["runtime"]
        ).json()
    assert drifted["decision"] == "deny"
    assert [r["rule"] for r in drifted["reasons"]] == ["GATE.approval_mismatch"]
    assert same["decision"] == "allow"
