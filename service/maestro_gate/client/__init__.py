"""What agent runtimes import: clients of the gate, the guard, and per-framework adapters.

    from maestro_gate.client import GateClient, guard

It depends on the service's request and decision models (`maestro_gate.core`) and httpx only,
never on the server (import-linter checks it); the adapters (`client.mcp`, `client.langchain`,
`client.openai_agents`) import their framework and are imported by name.
"""

from maestro_gate.client.approval import HitlPolicy
from maestro_gate.client.async_client import AsyncGateClient
from maestro_gate.client.context import GateContext, acting_as, current
from maestro_gate.client.exceptions import (
    ActionDenied,
    ApprovalRefused,
    ApprovalTimeout,
    GateClientError,
    GateRefused,
    GateUnavailable,
    ObligationsUnhandled,
)
from maestro_gate.client.guard import (
    ApprovalPending,
    PendingApproval,
    current_decision,
    delegation,
    guard,
    movement,
)
from maestro_gate.client.sync_client import GateClient
from maestro_gate.client.wire import Retry

__all__ = [
    "ActionDenied",
    "ApprovalPending",
    "ApprovalRefused",
    "ApprovalTimeout",
    "AsyncGateClient",
    "GateClient",
    "GateClientError",
    "GateContext",
    "GateRefused",
    "GateUnavailable",
    "HitlPolicy",
    "ObligationsUnhandled",
    "PendingApproval",
    "Retry",
    "acting_as",
    "current",
    "current_decision",
    "delegation",
    "guard",
    "movement",
]
