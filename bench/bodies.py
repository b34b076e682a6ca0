"""Representative request bodies against the example registry, one or more per kind."""

from __future__ import annotations

from typing import Any

ANALYST = "spiffe://corp.example/agent/analyst-security"
ORCHESTRATOR = "spiffe://corp.example/agent/orchestrator"
REPORTER = "spiffe://corp.example/agent/reporter"

BODIES: dict[str, dict[str, Any]] = {
    "agent_action": {
        "kind": "agent_action",
        "subject": {"id": ANALYST, "session_id": "s-1"},
        "action": "kb_search",
        "arguments": {"query": "open incidents on edge routers", "top_k": 10},
        "target": {"type": "store", "id": "kb-vectors", "classification": "internal"},
        "context": {"trace_id": "bench-trace", "task_id": "t-1", "goal": "triage"},
    },
    "data_movement": {
        "kind": "data_movement",
        "subject": {"id": ANALYST, "session_id": "s-1"},
        "data": {"classification": "internal", "tenant": "corp", "provenance": [ANALYST]},
        "source": {"type": "store", "id": "reports"},
        "destination": {"type": "agent", "id": REPORTER},
        "operation": "read",
        "context": {"trace_id": "bench-trace"},
    },
    "delegation": {
        "kind": "delegation",
        "subject": {"id": ORCHESTRATOR, "session_id": "s-1"},
        "delegatee": ANALYST,
        "task": {"goal": "triage the new advisories", "scopes": ["kb:read", "analysis:read"]},
        "ttl_seconds": 600,
        "context": {"trace_id": "bench-trace", "task_id": "triage-1"},
    },
}
