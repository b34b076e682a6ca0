"""Shadow mode (global and per layer) and the emergency stop, over HTTP, persisted and audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from tests.auth_support import ANALYST, CODER, act, events, gate_bundle, gate_settings, records

REGISTRY = {
    "maestro": {
        "registry": {
            "agents": {
                ANALYST: {"class": "analysis"},
                CODER: {"class": "engineering"},
            }
        }
    }
}


def _decide(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/decide", json=body, headers=headers)
    assert response.status_code == 200, response.text
    decided: dict[str, Any] = response.json()
    return decided


def test_global_shadow_answers_allow_and_records_the_real_verdict(tmp_path: Path) -> None:
    """In shadow mode a deny is answered allow with `evaluated_decision`, audited as deny."""
    settings, headers = gate_settings(tmp_path, mode="shadow")
    with TestClient(create_app(settings)) as client:
        decided = _decide(client, headers["runtime"], act("shell.exec"))
    assert (decided["decision"], decided["evaluated_decision"], decided["mode"]) == (
        "allow",
        "deny",
        "shadow",
    )
    [record] = [r for r in records(settings) if r["type"] == "decision"]
    assert (record["decision"], record["mode"]) == ("deny", "shadow")


def test_shadowed_layer_cannot_block_but_other_layers_still_do(tmp_path: Path) -> None:
    """With L4 shadowed, an L4 deny is answered allow; an L3 deny still denies."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        put = client.put(
            "/v1/admin/mode",
            json={"mode": "enforce", "shadow_layers": ["l4_deployment_infrastructure"]},
            headers=headers["admin"],
        )
        scan = _decide(client, headers["runtime"], act("net.scan"))
        shell = _decide(client, headers["runtime"], act("shell.exec"))
    assert put.json() == {"mode": "enforce", "shadow_layers": ["l4_deployment_infrastructure"]}
    assert (scan["decision"], scan["evaluated_decision"]) == ("allow", "deny")
    assert [r["rule"] for r in scan["reasons"]] == ["L4.network_scan"]
    assert shell["decision"] == "deny"
    assert "evaluated_decision" not in shell


def test_shadowed_escalation_is_answered_allow_without_an_approval(tmp_path: Path) -> None:
    """A hitl from a shadowed layer neither blocks nor opens an approval."""
    settings, headers = gate_settings(tmp_path, shadow_layers=["l6_security_compliance"])
    with TestClient(create_app(settings)) as client:
        decided = _decide(client, headers["runtime"], act("db.drop", reversible=False))
        pending = client.get("/v1/approvals?status=pending", headers=headers["alice"]).json()
    assert (decided["decision"], decided["evaluated_decision"]) == ("allow", "require_hitl")
    assert "approval" not in decided
    assert pending["approvals"] == []


def test_mode_changes_are_audited_and_survive_a_restart(tmp_path: Path) -> None:
    """PUT /v1/admin/mode writes a `mode_changed` event and persists across processes."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        client.put("/v1/admin/mode", json={"mode": "shadow"}, headers=headers["admin"])
    with TestClient(create_app(settings)) as client:
        mode = client.get("/v1/admin/mode", headers=headers["admin"]).json()
        decided = _decide(client, headers["runtime"], act("shell.exec"))
    assert mode == {"mode": "shadow", "shadow_layers": []}
    assert decided["decision"] == "allow"
    [change] = events(settings, "mode_changed")
    assert change["detail"]["by"] == "admin"
    assert change["detail"]["from"]["mode"] == "enforce"
    assert change["detail"]["to"]["mode"] == "shadow"


def test_unknown_layer_is_422_and_only_policy_admins_change_the_mode(tmp_path: Path) -> None:
    """A typo in a layer name is refused; an approver cannot flip the mode."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        typo = client.put(
            "/v1/admin/mode",
            json={"mode": "enforce", "shadow_layers": ["l9_magic"]},
            headers=headers["admin"],
        )
        approver = client.put("/v1/admin/mode", json={"mode": "shadow"}, headers=headers["alice"])
    assert typo.status_code == 422  # the schema lists the real layers
    assert approver.status_code == 403
    assert events(settings, "mode_changed") == []


def test_emergency_stop_denies_an_agent_even_without_a_policy_rule(tmp_path: Path) -> None:
    """A stopped agent is denied `L6.emergency_stop` by the gate itself, even in shadow mode."""
    settings, headers = gate_settings(tmp_path, mode="shadow")
    with TestClient(create_app(settings)) as client:
        added = client.post(
            "/v1/admin/emergency-stop",
            json={"kind": "agent", "id": ANALYST, "reason": "exfiltration suspected"},
            headers=headers["admin"],
        )
        stopped = _decide(client, headers["runtime"], act())
        other = _decide(client, headers["coder-runtime"], act(subject=CODER))
        lifted = client.delete(
            "/v1/admin/emergency-stop",
            params={"kind": "agent", "id": ANALYST},
            headers=headers["admin"],
        )
        resumed = _decide(client, headers["runtime"], act())
    assert added.status_code == 201
    assert added.json()["agents"][0]["reason"] == "exfiltration suspected"
    assert stopped["decision"] == "deny"
    assert [r["rule"] for r in stopped["reasons"]] == ["L6.emergency_stop"]
    assert stopped["layers"]["l6_security_compliance"] == "deny"
    assert other["decision"] == "allow"
    assert lifted.json() == {"agents": [], "classes": []}
    assert resumed["decision"] == "allow"
    assert [e["subject"] for e in events(settings, "emergency_stop_added")] == [ANALYST]
    assert len(events(settings, "emergency_stop_lifted")) == 1


def test_emergency_stop_of_a_class_stops_its_agents_and_persists(tmp_path: Path) -> None:
    """Stopping a registry class denies every agent of it, also after a restart."""
    gate_bundle(tmp_path / "bundle", data=REGISTRY)
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        client.post(
            "/v1/admin/emergency-stop",
            json={"kind": "class", "id": "engineering"},
            headers=headers["admin"],
        )
    with TestClient(create_app(settings)) as client:
        coder = _decide(client, headers["coder-runtime"], act(subject=CODER))
        analyst = _decide(client, headers["runtime"], act())
        listed = client.get("/v1/admin/emergency-stop", headers=headers["admin"]).json()
    assert [r["message"] for r in coder["reasons"]] == [
        f"agent class engineering (agent {CODER}) is under emergency stop"
    ]
    assert analyst["decision"] == "allow"
    assert [s["id"] for s in listed["classes"]] == ["engineering"]
    state = analyst["obligations"][0]["params"]
    assert state["emergency_stop"] == {"agents": [], "classes": ["engineering"]}


def test_emergency_stop_covers_a_delegatee(tmp_path: Path) -> None:
    """Delegating to a stopped agent is denied too."""
    settings, headers = gate_settings(tmp_path)
    delegation = {
        "kind": "delegation",
        "subject": {"id": ANALYST},
        "delegatee": CODER,
        "task": {"goal": "patch the report generator", "scopes": ["repo:write"]},
        "ttl_seconds": 600,
    }
    with TestClient(create_app(settings)) as client:
        stop = {"kind": "agent", "id": CODER}
        client.post("/v1/admin/emergency-stop", json=stop, headers=headers["admin"])
        decided = _decide(client, headers["runtime"], delegation)
    assert decided["decision"] == "deny"
    assert decided["reasons"][0]["message"] == f"agent {CODER} is under emergency stop"


def test_lifting_a_stop_that_does_not_exist_is_404(tmp_path: Path) -> None:
    """DELETE names what to lift; nothing stopped means 404 and no audit event."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        target = {"kind": "agent", "id": CODER}
        response = client.delete(
            "/v1/admin/emergency-stop", params=target, headers=headers["admin"]
        )
    assert response.status_code == 404
    assert events(settings, "emergency_stop_lifted") == []
