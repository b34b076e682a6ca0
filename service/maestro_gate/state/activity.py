"""What one decided request adds to the state: its cost, its session and its history entry.

A request's cost is `context.attributes.cost` when it is a finite number >= 0, else 0; only an
allowed request spends it. A history entry carries `kind`, `action` (the tool, the data
operation, or `delegate`), `classification` and `destination_type` when the request has them
(a missing key, never null: a null classification would rank as the most sensitive), and the
decision. Entries are listed oldest first.
"""

from __future__ import annotations

import math
from typing import Any

from maestro_gate.core.requests import AgentAction, AnyRequest, DataMovement

NO_SESSION = "-"


def cost_of(request: AnyRequest, decision: str) -> float:
    """The budget this request spends: its declared cost when allowed, else nothing."""
    cost = request.context.attributes.get("cost")
    if decision != "allow" or isinstance(cost, bool) or not isinstance(cost, int | float):
        return 0.0
    return float(cost) if math.isfinite(cost) and cost >= 0 else 0.0


def session_of(request: AnyRequest) -> str:
    """The session a request belongs to (`-` when it names none)."""
    return request.subject.session_id or NO_SESSION


def entry(request: AnyRequest, decision: str) -> dict[str, Any]:
    """The `state.session.recent` entry for a decided request."""
    item: dict[str, Any] = {"kind": request.kind}
    if isinstance(request, AgentAction):
        item["action"] = request.action
        if request.target is not None:
            item["destination_type"] = request.target.type
            if request.target.classification is not None:
                item["classification"] = request.target.classification
    elif isinstance(request, DataMovement):
        item["action"] = request.operation
        item["classification"] = request.data.classification
        item["destination_type"] = request.destination.type
    else:
        item["action"] = "delegate"
        item["destination_type"] = "agent"
    item["decision"] = decision
    return item


def window_index(now_s: float, window_s: int) -> int:
    """The fixed budget period `now_s` falls in."""
    return int(now_s // window_s)
