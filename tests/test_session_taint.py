"""Session taint follows the chain (issue 21 item 4): a restricted read by a delegator taints
its delegate's export in the same session, over HTTP on the real bundle, in memory and Redis."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from tests.auth_support import gate_settings
from tests.conftest import POLICIES

REDIS_URL = os.environ.get("MAESTRO_GATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ANALYST = "spiffe://corp.example/agent/analyst-security"
REPORTER = "spiffe://corp.example/agent/reporter"
TAINT = "CL.restricted_session_to_external"


def read_incidents(session: str) -> dict[str, Any]:
    """analyst-security reads the restricted incident-db in `session`."""
    return {
        "kind": "data_movement",
        "subject": {"id": ANALYST, "session_id": session},
        "data": {"classification": "restricted", "tenant": "corp"},
        "source": {"type": "store", "id": "incident-db"},
        "destination": {"type": "agent", "id": ANALYST},
        "operation": "read",
        "context": {"trace_id": "t-1", "task_id": "task-1"},
    }


def export_by_delegate(session: str) -> dict[str, Any]:
    """reporter, delegated by analyst-security, exports an internal report to the partner."""
    return {
        "kind": "data_movement",
        "subject": {"id": REPORTER, "session_id": session},
        "data": {"classification": "internal", "tenant": "corp"},
        "source": {"type": "store", "id": "reports"},
        "destination": {"type": "external", "id": "reports.partner.example"},
        "operation": "export",
        "context": {
            "trace_id": "t-1",
            "task_id": "task-1",
            "delegation_chain": [
                {"delegator": ANALYST, "delegatee": REPORTER, "scopes": [], "ttl_seconds": 600}
            ],
        },
    }


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_delegators_restricted_read_taints_the_delegates_export(tmp_path: Path, store: str) -> None:
    """Same session: the export is denied by the taint rule; another session: not by it."""
    prefix = f"maestro-test:{uuid.uuid4().hex}:"
    extra = {"redis_url": REDIS_URL, "redis_prefix": prefix} if store == "redis" else {}
    settings, headers = gate_settings(tmp_path, bundle_dir=POLICIES, catalog_dir=None, **extra)
    with TestClient(create_app(settings)) as client:

        def rules(body: dict[str, Any]) -> set[str]:
            response = client.post("/v1/decide", json=body, headers=headers["root"])
            assert response.status_code == 200, response.text
            return {r["rule"] for r in response.json()["reasons"]}

        assert TAINT not in rules(export_by_delegate("s-taint"))
        read = rules(read_incidents("s-taint"))
        tainted = rules(export_by_delegate("s-taint"))
        clean = rules(export_by_delegate("s-other"))
    if store == "redis":
        plain = redis.Redis.from_url(REDIS_URL)
        for key in plain.scan_iter(f"{prefix}*"):
            plain.delete(key)
        plain.close()
    assert not any(r.startswith("GATE.") for r in read)
    assert TAINT in tainted
    assert TAINT not in clean
