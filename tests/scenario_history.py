"""A scenario's `history`: the earlier requests of its session, recorded as the gate records them.

A fixture may list, under `history`, request bodies that ran before its `request` in the same
session, each allowed (the HTTP scenario test sends them first and checks that they are). The
engine harnesses give the request the `state.session` the gate's own in-memory state source
(state/memory.py) holds after recording them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.state.memory import MemoryState


def recorded(scenario: dict[str, Any]) -> MemoryState:
    """A MemoryState that has recorded the scenario's history, every entry allowed."""
    state = MemoryState()
    for body in scenario.get("history", []):
        asyncio.run(state.observe(REQUEST_ADAPTER.validate_python(body), "allow"))
    return state


def session_state(scenario: dict[str, Any]) -> dict[str, Any]:
    """`{"session": ...}` as the gate snapshots it for the scenario's request, or `{}`."""
    if not scenario.get("history"):
        return {}
    request = REQUEST_ADAPTER.validate_python(scenario["request"])
    snapshot = asyncio.run(recorded(scenario).snapshot(request))
    return {"session": snapshot["session"]}
