"""What a request costs against its agent's budget, and the hold placed on the budget for it.

The cost is the one `L6.budget_exhausted` compares (policies/.../l6_security_compliance): the
caller's `context.attributes.cost` when it is a finite number >= 0, or the registry's
`tools[action].cost` for a costed tool when that is higher. A caller may declare more than the
registry says, never less.

The DecisionPoint reserves that cost while it takes the state snapshot, so that concurrent
requests cannot overdraw a budget together: each sees what was spent and reserved before it,
and the reservation is kept only if the request is allowed.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from maestro_gate.core.decision.requests import AgentAction, AnyRequest


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def declared_cost(request: AnyRequest) -> float:
    """The caller's `context.attributes.cost`, when it is a finite number >= 0; else 0."""
    return _number(request.context.attributes.get("cost")) or 0.0


def request_cost(request: AnyRequest, tool_cost: Callable[[str], object] | None = None) -> float:
    """The higher of the declared cost and, for a tool call, the registry's cost of the tool."""
    declared = declared_cost(request)
    if tool_cost is None or not isinstance(request, AgentAction):
        return declared
    registered = _number(tool_cost(request.action)) or 0.0
    return registered if registered > declared else declared


@dataclass(frozen=True, slots=True)
class Reservation:
    """`cost` held on `agent`'s budget in `period` for one request, until it is decided."""

    agent: str
    period: int
    cost: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
