"""The probe requests a bundle is evaluated on before it is activated (engine/bundle_contract.py).

One request of each kind from an agent no registry knows, and the same three again from the
bundle's own first registered agent (by id), calling its first tool, delegating to its first
delegatee and receiving data from a store. The unregistered ones reach the deny paths every
layer must still give a verdict on; the registered ones reach the paths a deployer's traffic
takes. Each is a valid `/v1/decide` body, turned into the engine's input document as the
decision point does it: the request as JSON plus `state` with nothing observed yet.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from maestro_gate.core.decision.ports import empty_state
from maestro_gate.core.decision.requests import REQUEST_ADAPTER

UNREGISTERED = "spiffe://contract.probe/agent/unregistered"
PROBE_REQUESTS: dict[str, dict[str, Any]] = {
    "agent_action": {
        "kind": "agent_action",
        "subject": {"id": UNREGISTERED, "session_id": "contract-probe"},
        "action": "kb_search",
        "arguments": {"query": "contract probe"},
        "context": {"trace_id": "contract-probe", "goal": "check the bundle contract"},
    },
    "data_movement": {
        "kind": "data_movement",
        "subject": {"id": UNREGISTERED, "session_id": "contract-probe"},
        "data": {"classification": "internal", "labels": ["probe"]},
        "source": {"type": "store", "id": "contract-probe-store"},
        "destination": {"type": "agent", "id": UNREGISTERED},
        "operation": "read",
        "context": {"trace_id": "contract-probe"},
    },
    "delegation": {
        "kind": "delegation",
        "subject": {"id": UNREGISTERED, "session_id": "contract-probe"},
        "delegatee": "spiffe://contract.probe/agent/delegatee",
        "task": {"goal": "check the bundle contract", "scopes": ["kb:read"]},
        "ttl_seconds": 300,
        "context": {"trace_id": "contract-probe"},
    },
}


def probe_documents(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The engine input documents to probe a bundle whose data document is `data`, by name."""
    documents = {
        f"{kind} (unregistered agent)": _document(body) for kind, body in PROBE_REQUESTS.items()
    }
    for name, body in _registered(data).items():
        try:
            documents[name] = _document(body)
        except ValidationError:
            continue  # a registry entry no request could name (such as a malformed tool name)
    return documents


def _registered(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    agents = data.get("maestro", {}).get("registry", {}).get("agents")
    if not isinstance(agents, dict):
        return {}
    ids = sorted(a for a, entry in agents.items() if isinstance(entry, dict) and "://" in a)
    if not ids:
        return {}
    agent = ids[0]
    entry = agents[agent]
    tools = sorted(entry.get("tools") or {}) if isinstance(entry.get("tools"), dict) else []
    delegatees = [d for d in entry.get("delegatees") or [] if isinstance(d, str) and "://" in d]
    scopes = [s for s in entry.get("scopes") or [] if isinstance(s, str) and s]
    subject = {"id": agent, "session_id": "contract-probe"}
    action = PROBE_REQUESTS["agent_action"] | {"subject": subject}
    if tools:
        action["action"] = tools[0]
    movement = PROBE_REQUESTS["data_movement"] | {
        "subject": subject,
        "destination": {"type": "agent", "id": agent},
    }
    delegation = PROBE_REQUESTS["delegation"] | {"subject": subject}
    if delegatees:
        delegation["delegatee"] = delegatees[0]
    delegation["task"] = {"goal": "check the bundle contract", "scopes": scopes[:1]}
    return {
        f"agent_action (registered agent {agent})": action,
        f"data_movement (registered agent {agent})": movement,
        f"delegation (registered agent {agent})": delegation,
    }


def _document(body: dict[str, Any]) -> dict[str, Any]:
    request = REQUEST_ADAPTER.validate_python(body)
    document = request.model_dump(mode="json", exclude_none=True)
    state: dict[str, Any] = empty_state()
    state["now_ns"] = time.time_ns()
    state["pending_approvals"] = 0
    state["emergency_stop"] = {"agents": [], "classes": []}
    subjects = [request.subject.id]
    state["caller"] = {"principal": "contract-probe", "authenticated_subjects": subjects}
    return {**document, "state": state}
