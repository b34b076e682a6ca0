"""LangChain and LangGraph: tools wrapped so that each invocation is decided by the gate first.

    tools = gate_tools([search, send_email], gate)
    agent = create_react_agent(model, tools)        # or ToolNode(tools) in your own graph

Each wrapped tool keeps the name, description and argument schema of the one it wraps. A denied
call raises ToolException with the gate's reasons, which the tool turns into its error message
(`ToolMessage(status="error")` in a graph), so the model reads why and the tool never runs.
`require_hitl` follows the HitlPolicy (under `pending` the error names the approval). An
unreachable or failing gate raises out of the graph: it never becomes a tool result.

With a GateClient the tools run synchronously (LangChain runs them in a thread for `ainvoke`,
copying the context, so `acting_as` holds); with an AsyncGateClient they are coroutines.
Needs `langchain-core` (the `adapters` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from maestro_gate.client.approval import HitlPolicy
from maestro_gate.client.async_client import AsyncGateClient
from maestro_gate.client.context import GateContext
from maestro_gate.client.exceptions import ActionDenied
from maestro_gate.client.guard import (
    ApprovalPending,
    Client,
    Guard,
    ObligationHandler,
    TargetOf,
    guard,
)
from maestro_gate.client.sync_client import GateClient


def gate_tools(
    tools: Sequence[BaseTool],
    gate: Client,
    *,
    target: TargetOf = None,
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
    context: GateContext | None = None,
) -> list[BaseTool]:
    """Each of `tools`, wrapped by `gate_tool`."""
    return [
        gate_tool(t, gate, target=target, hitl=hitl, on_obligations=on_obligations, context=context)
        for t in tools
    ]


def gate_tool(
    tool: BaseTool,
    gate: Client,
    *,
    target: TargetOf = None,
    reversible: bool = True,
    side_effects: Sequence[str] = (),
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
    context: GateContext | None = None,
) -> BaseTool:
    """`tool` behind the gate: the same tool to the model, decided before every call."""

    def checked(arguments: dict[str, Any]) -> Guard:
        return guard(
            gate,
            action=tool.name,
            arguments=arguments,
            target=target,
            reversible=reversible,
            side_effects=side_effects,
            hitl=hitl,
            on_obligations=on_obligations,
            context=context,
        )

    def run(**arguments: Any) -> Any:
        try:
            with checked(arguments):
                return tool.invoke(arguments)
        except ActionDenied as denied:
            raise ToolException(refusal(tool.name, denied)) from denied

    async def arun(**arguments: Any) -> Any:
        try:
            async with checked(arguments):
                return await tool.ainvoke(arguments)
        except ActionDenied as denied:
            raise ToolException(refusal(tool.name, denied)) from denied

    is_async = isinstance(gate, AsyncGateClient)
    if not is_async and not isinstance(gate, GateClient):
        raise TypeError("gate must be a GateClient or an AsyncGateClient")
    return StructuredTool.from_function(
        func=None if is_async else run,
        coroutine=arun if is_async else None,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        handle_tool_error=True,
    )


def refusal(name: str, denied: ActionDenied) -> str:
    """What the model reads instead of the tool's result: the refusal and each reason."""
    if isinstance(denied, ApprovalPending):
        head = f"{name} waits for human approval {denied.pending.approval_id}"
    else:
        head = f"the gate refused {name}"
    reasons = "; ".join(f"{r.rule}: {r.message}" for r in denied.reasons)
    return f"{head}: {reasons}" if reasons else head
