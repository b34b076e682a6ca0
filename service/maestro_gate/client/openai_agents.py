"""The OpenAI Agents SDK: a tool input guardrail that asks the gate before each function tool.

    search = function_tool(search_fn, tool_input_guardrails=[gate_guardrail(gate)])
    agent = Agent(name="analyst", tools=[search], model=...)

The guardrail decides an `agent_action` named after the tool with its JSON arguments. On allow
the tool runs (the obligations went to `on_obligations` first); on deny the SDK sends the model
the refusal with the gate's reasons instead of the tool's output (`reject_content`), and the tool
does not run; `require_hitl` follows the HitlPolicy (under `pending` the refusal names the
approval). Arguments that are not a JSON object are refused without asking. An unreachable or
failing gate raises out of the run. Either client works; a GateClient decides in a worker
thread. Needs `openai-agents` (the `adapters` extra).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from agents import (
    FunctionTool,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    function_tool,
    tool_input_guardrail,
)

from maestro_gate.client.approval import HitlPolicy
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
from maestro_gate.core.decision.decisions import DecisionResponse


def gate_guardrail(
    gate: Client,
    *,
    target: TargetOf = None,
    reversible: bool = True,
    side_effects: Sequence[str] = (),
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
    context: GateContext | None = None,
) -> ToolInputGuardrail[Any]:
    """A tool input guardrail deciding each call of the tools it is attached to.

    With a GateClient the decision is made in a worker thread (the SDK runs guardrails on its
    event loop), the acting context copied into it.
    """

    @tool_input_guardrail(name="maestro_gate")
    async def maestro_gate(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        name = data.context.tool_name
        try:
            arguments = json.loads(data.context.tool_arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return ToolGuardrailFunctionOutput.reject_content(
                f"the gate refused {name}: its arguments are not a JSON object"
            )
        checked = guard(
            gate,
            action=name,
            arguments=arguments,
            target=target,
            reversible=reversible,
            side_effects=side_effects,
            hitl=hitl,
            on_obligations=on_obligations,
            context=context,
        )
        try:
            if isinstance(gate, GateClient):
                decision = await anyio.to_thread.run_sync(decided_in_thread, checked)
            else:
                async with checked as decision:
                    pass
        except ActionDenied as denied:
            return ToolGuardrailFunctionOutput.reject_content(
                refusal(name, denied),
                output_info={
                    "decision_id": denied.decision.decision_id if denied.decision else None
                },
            )
        return ToolGuardrailFunctionOutput.allow(output_info={"decision_id": decision.decision_id})

    return maestro_gate


def decided_in_thread(checked: Guard) -> DecisionResponse:
    """The decision a synchronous guard reaches (ActionDenied when it refuses)."""
    with checked as decision:
        return decision


def gated_function_tool(fn: Callable[..., Any], gate: Client, **guardrail: Any) -> FunctionTool:
    """`function_tool(fn)` with the gate's guardrail attached."""
    return function_tool(fn, tool_input_guardrails=[gate_guardrail(gate, **guardrail)])


def refusal(name: str, denied: ActionDenied) -> str:
    """What the model reads instead of the tool's output."""
    if isinstance(denied, ApprovalPending):
        head = f"{name} waits for human approval {denied.pending.approval_id}"
    else:
        head = f"the gate refused {name}"
    reasons = "; ".join(f"{r.rule}: {r.message}" for r in denied.reasons)
    return f"{head}: {reasons}" if reasons else head
