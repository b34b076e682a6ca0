"""`input.state` over HTTP: the exact shape, in-process counters, Redis shared by two instances."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import redis
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.config import Settings
from tests.auth_support import ANALYST, act, echoed_state, gate_settings
from tests.conftest import POLICIES

REDIS_URL = os.environ.get("MAESTRO_GATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _prefix() -> str:
    return f"maestro-test:{uuid.uuid4().hex}:"


def _decide(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/decide", json=body, headers=headers)
    assert response.status_code == 200, response.text
    decided: dict[str, Any] = response.json()
    return decided


def test_state_has_exactly_the_documented_shape(tmp_path: Path) -> None:
    """The policy sees now_ns, pending_approvals, agent, session, emergency_stop and caller."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        state = echoed_state(_decide(client, headers["runtime"], act()))
    assert state == {
        "now_ns": "number",
        "pending_approvals": 0,
        "agent": {"requests_in_window": 0, "window_seconds": 60, "budget_spent": 0},
        "session": {"recent": []},
        "emergency_stop": {"agents": [], "classes": []},
        "caller": {"principal": "runtime", "authenticated_subjects": [ANALYST]},
    }


def test_state_carries_the_approval_only_when_an_approval_id_is_given(tmp_path: Path) -> None:
    """`state.approval` has id, status and approvals for a re-submission."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        body = act("payments.refund")
        ticket = _decide(client, headers["runtime"], body)["approval"]
        pending = _decide(client, headers["runtime"], {**body, "approval_id": ticket["id"]})
    assert echoed_state(pending)["approval"] == {
        "id": ticket["id"],
        "status": "pending",
        "approvals": 0,
    }


def test_memory_state_counts_requests_budget_and_session_history(tmp_path: Path) -> None:
    """Rates count every decision, budgets sum allowed costs, history lists the session.

    An entry names its task and state version when the request does, and where a movement went.
    """
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        _decide(client, headers["runtime"], act(context={"attributes": {"cost": 2.5}}))
        _decide(client, headers["runtime"], act("shell.exec", context={"attributes": {"cost": 9}}))
        data = {"classification": "restricted"}
        move = {
            "kind": "data_movement",
            "subject": {"id": ANALYST, "session_id": "s-1"},
            "data": data,
            "source": {"type": "store", "id": "hr-db"},
            "destination": {"type": "agent", "id": "spiffe://corp.example/agent/reporter"},
            "operation": "read",
            "context": {"task_id": "t-9", "state_version": 3},
        }
        _decide(client, headers["runtime"], move)
        other_session = act(subject=ANALYST)
        other_session["subject"] = {"id": ANALYST, "session_id": "s-2"}
        state = echoed_state(_decide(client, headers["runtime"], act()))
        fresh = echoed_state(_decide(client, headers["runtime"], other_session))
    assert state["agent"] == {"requests_in_window": 3, "window_seconds": 60, "budget_spent": 2.5}
    assert state["session"]["recent"] == [
        {"agent": ANALYST, "kind": "agent_action", "action": "web.search", "decision": "allow"},
        {"agent": ANALYST, "kind": "agent_action", "action": "shell.exec", "decision": "deny"},
        {
            "agent": ANALYST,
            "kind": "data_movement",
            "task_id": "t-9",
            "state_version": 3,
            "action": "read",
            "source": "hr-db",
            "classification": "restricted",
            "destination": "spiffe://corp.example/agent/reporter",
            "destination_type": "agent",
            "decision": "allow",
        },
    ]
    assert fresh["session"]["recent"] == []
    assert fresh["agent"]["requests_in_window"] == 4


def _redis_settings(tmp_path: Path, prefix: str) -> tuple[Settings, dict[str, dict[str, str]]]:
    return gate_settings(tmp_path, redis_url=REDIS_URL, redis_prefix=prefix)


def test_redis_counters_are_shared_by_two_instances(tmp_path: Path) -> None:
    """Two services on one Redis see each other's requests, spending and session history."""
    prefix = _prefix()
    first, headers = _redis_settings(tmp_path / "a", prefix)
    second, _ = _redis_settings(tmp_path / "b", prefix)
    second = second.model_copy(update={"api_keys_file": first.api_keys_file})
    costly = act(context={"attributes": {"cost": 1.5}})
    with (
        TestClient(create_app(first)) as one,
        TestClient(create_app(second)) as two,
    ):
        for _ in range(3):
            _decide(one, headers["runtime"], costly)
        for _ in range(2):
            _decide(two, headers["runtime"], costly)
        seen_by_one = echoed_state(_decide(one, headers["runtime"], act()))
        seen_by_two = echoed_state(_decide(two, headers["runtime"], act()))
    assert seen_by_one["agent"]["requests_in_window"] == 5
    assert seen_by_one["agent"]["budget_spent"] == 7.5
    assert len(seen_by_one["session"]["recent"]) == 5
    assert seen_by_two["agent"]["requests_in_window"] == 6
    assert seen_by_two["session"]["recent"][-1] == {
        "agent": ANALYST,
        "kind": "agent_action",
        "action": "web.search",
        "decision": "allow",
    }


def test_redis_keys_use_the_configured_prefix_and_expire(tmp_path: Path) -> None:
    """Every key the gate writes is under its prefix and carries a TTL."""
    prefix = _prefix()
    settings, headers = _redis_settings(tmp_path, prefix)
    with TestClient(create_app(settings)) as client:
        _decide(client, headers["runtime"], act(context={"attributes": {"cost": 1}}))
    plain = redis.Redis.from_url(REDIS_URL)
    try:
        keys = sorted(k.decode() for k in plain.scan_iter(f"{prefix}*"))
        ttls = [plain.ttl(k) for k in keys]
    finally:
        plain.close()
    assert [k[len(prefix) :].split(":")[0] for k in keys] == ["budget", "rate", "recent"]
    assert all(t > 0 for t in ttls)


def test_unreachable_redis_fails_closed(tmp_path: Path) -> None:
    """When the state store cannot be read the answer is deny `GATE.state_unavailable`."""
    settings, headers = gate_settings(tmp_path, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        decided = _decide(client, headers["runtime"], act())
        metrics = client.get("/metrics").text
    assert decided["decision"] == "deny"
    assert [r["rule"] for r in decided["reasons"]] == ["GATE.state_unavailable"]
    assert 'maestro_state_errors_total{op="snapshot"} 1.0' in metrics


def test_the_real_bundle_runs_with_authentication_and_state(tmp_path: Path) -> None:
    """The project's policies load and decide with the caller and state the gate supplies."""
    settings, headers = gate_settings(tmp_path, bundle_dir=POLICIES, catalog_dir=None)
    orchestrator = "spiffe://corp.example/agent/orchestrator"
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        decided = _decide(client, headers["root"], act("routing_graph_read", subject=orchestrator))
    assert ready.status_code == 200, ready.text
    assert decided["decision"] in {"allow", "deny", "require_hitl"}
    rules = {r["rule"] for r in decided["reasons"]}
    assert not {r for r in rules if r.startswith("GATE.")}
    assert "L7.impersonated_agent" not in rules
