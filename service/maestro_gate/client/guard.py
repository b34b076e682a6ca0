"""The guard: nothing runs before the gate allows it.

    @guard(client, target=Resource(type="store", id="crm"), reversible=False)
    def send_email(to: str, body: str) -> str: ...

    with acting_as("spiffe://corp.example/agent/analyst", session_id="s-1"):
        send_email("a@example.com", "hi")     # decided first; runs only on allow

A guarded call builds an `agent_action` (tool name, bound arguments, the declared target,
`reversible`, `side_effects`, the acting context), decides, and then: on allow hands the
obligations to `on_obligations` (and refuses to run when there are obligations and no one to
take them) and runs; on deny raises ActionDenied with the reasons; on `require_hitl` follows its
HitlPolicy. An async function needs an AsyncGateClient, a plain one a GateClient.

The same object is a context manager (`with guard(client, action="x", arguments={...}) as
decision:`), and `movement` and `delegation` build the other two request kinds the same way.
Inside a guarded call `current_decision()` is the decision that let it run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from maestro_gate.client import context as acting
from maestro_gate.client.approval import HitlPolicy
from maestro_gate.client.guarded import (
    UNNAMED,
    ApprovalPending,
    Client,
    Guard,
    ObligationHandler,
    PendingApproval,
    TargetOf,
    current_decision,
)
from maestro_gate.core.decision.requests import (
    AgentAction,
    AnyRequest,
    Data,
    DataMovement,
    Delegation,
    DelegationHop,
    Endpoint,
    Task,
    ToolDescriptor,
)

__all__ = [
    "ApprovalPending",
    "Client",
    "Guard",
    "ObligationHandler",
    "PendingApproval",
    "TargetOf",
    "current_decision",
    "delegation",
    "guard",
    "movement",
]


def guard(
    client: Client,
    *,
    action: str | None = None,
    arguments: Mapping[str, Any] | None = None,
    target: TargetOf = None,
    reversible: bool = True,
    side_effects: Sequence[str] = (),
    tool: ToolDescriptor | None = None,
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
    context: acting.GateContext | None = None,
) -> Guard:
    """A guard of `agent_action`s: decorate a tool function, or `with` it around one action.

    `action` is the tool name (default: the function's name); `target` a Resource, or a
    function of the bound arguments giving one; `arguments` is for the `with` form (the
    decorator takes the call's own). `context` overrides the acting context in force.
    """
    fixed = dict(arguments or {})

    def build(
        ctx: acting.GateContext, called: dict[str, Any] | None, name: str | None
    ) -> AnyRequest:
        given = called if called is not None else to_jsonable_python(fixed, fallback=str)
        resource = target(given) if callable(target) else target
        return AgentAction(
            kind="agent_action",
            subject=ctx.subject_model(),
            context=ctx.context_model(),
            action=name or action or UNNAMED,
            arguments=given,
            target=resource,
            reversible=reversible,
            side_effects=list(side_effects),
            tool=tool,
        )

    return Guard(
        client,
        build,
        what=action or UNNAMED,
        hitl=hitl or HitlPolicy(),
        on_obligations=on_obligations,
        context=context,
    )


def movement(
    client: Client,
    *,
    data: Data,
    source: Endpoint,
    destination: Endpoint,
    operation: str,
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
    context: acting.GateContext | None = None,
) -> Guard:
    """A guard of one `data_movement`: `with movement(...) as decision:` moves only on allow."""

    def build(ctx: acting.GateContext, _: Any, __: Any) -> AnyRequest:
        return DataMovement.model_validate(
            {
                "kind": "data_movement",
                "subject": ctx.subject_model(),
                "context": ctx.context_model(),
                "data": data,
                "source": source,
                "destination": destination,
                "operation": operation,
            }
        )

    what = f"{operation} {source.id} -> {destination.id}"
    return Guard(
        client,
        build,
        what=what,
        hitl=hitl or HitlPolicy(),
        on_obligations=on_obligations,
        context=context,
    )


def delegation(
    client: Client,
    *,
    delegatee: str,
    goal: str,
    scopes: Sequence[str] = (),
    ttl_seconds: int = 3600,
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
    context: acting.GateContext | None = None,
) -> Guard:
    """A guard of one `delegation`: on allow the block acts as `delegatee`, the hop on its chain."""

    def build(ctx: acting.GateContext, _: Any, __: Any) -> AnyRequest:
        return Delegation(
            kind="delegation",
            subject=ctx.subject_model(),
            context=ctx.context_model(),
            delegatee=delegatee,
            task=Task(goal=goal, scopes=list(scopes)),
            ttl_seconds=ttl_seconds,
        )

    def entered(request: AnyRequest) -> acting.GateContext:
        hop = DelegationHop(
            delegator=request.subject.id,
            delegatee=delegatee,
            scopes=list(scopes),
            ttl_seconds=ttl_seconds,
        )
        ctx = acting.GateContext(**_fields(request)).delegated_to(hop)
        return ctx

    return Guard(
        client,
        build,
        what=f"delegation to {delegatee}",
        hitl=hitl or HitlPolicy(),
        on_obligations=on_obligations,
        context=context,
        entered=entered,
    )


def _fields(request: AnyRequest) -> dict[str, Any]:
    subject, ctx = request.subject, request.context
    return {
        "subject": subject.id,
        "session_id": subject.session_id,
        "run_id": subject.run_id,
        "on_behalf_of": subject.on_behalf_of,
        "trace_id": ctx.trace_id,
        "task_id": ctx.task_id,
        "goal": ctx.goal,
        "goal_scopes": tuple(ctx.goal_scopes),
        "delegation_chain": tuple(ctx.delegation_chain),
        "attributes": dict(ctx.attributes),
    }
