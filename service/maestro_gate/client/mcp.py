"""A gate in front of an MCP server: every `tools/call` is decided before the tool runs.

Two ways in. On the client side, a proxy of the MCP client session:

    async with mcp.Client(server) as session:
        tools = GatedMCPClient(session, gate, server="mcp://jira.corp.example")
        result = await tools.call_tool("jira_create_issue", {"project": "SEC", ...})

On the server side, a middleware on an `MCPServer` (mcp 2.x), for every client it serves; the
acting agent is a fixed GateContext or a function of the request context (its auth, say):

    gate_server(server, gate, context=GateContext(subject="spiffe://corp.example/agent/x"))

Before each call the proxy lists the server's tools (the session's own listing, with whatever
caching it applies) and sends the called tool's descriptor digest as `tool.digest`, so L7's
`tool_description_mismatch` sees a description swapped after it was approved. A denied call
comes back as an MCP tool error (`isError`) whose text carries the gate's reasons; the tool is
not called. `require_hitl` follows the HitlPolicy (wait for the approval, or answer at once with
a tool error naming the pending approval). An unreachable or failing gate raises: it is never a
tool result the model could read as success.

Needs the `mcp` package (the `adapters` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ListToolsResult, TextContent, Tool

from maestro_gate.client.approval import HitlPolicy
from maestro_gate.client.async_client import AsyncGateClient
from maestro_gate.client.context import GateContext
from maestro_gate.client.exceptions import ActionDenied
from maestro_gate.client.guard import ApprovalPending, ObligationHandler, TargetOf, guard
from maestro_gate.core.decision.requests import ToolDescriptor
from maestro_gate.core.ledger.chain import canonical, sha256_hex

NO_DIGEST = "sha256:none"
"""Sent for a tool the server does not list: a registered digest never matches it."""


class ToolSession(Protocol):
    """What the proxy needs of an MCP client: `mcp.Client` and `mcp.ClientSession` both fit."""

    async def list_tools(self) -> ListToolsResult:
        """The server's tools."""
        ...

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        """Call one tool."""
        ...


def tool_digest(tool: Tool) -> str:
    """`sha256:<hex>` of the RFC 8785 form of the tool's name, description and input schema.

    Register this value as the tool's `description_digest`: any change the model would see in
    how the tool is described (its text or its parameters) changes it.
    """
    described = {
        "name": tool.name,
        "description": tool.description or "",
        "inputSchema": tool.input_schema,
    }
    return "sha256:" + sha256_hex(canonical(described))


class GatedMCPClient:
    """An MCP client proxy that asks the gate before every tool call."""

    def __init__(
        self,
        session: ToolSession,
        gate: AsyncGateClient,
        *,
        server: str | None = None,
        target: TargetOf = None,
        hitl: HitlPolicy | None = None,
        on_obligations: ObligationHandler | None = None,
        context: GateContext | None = None,
    ) -> None:
        self.session = session
        self.gate = gate
        self.server = server
        self.hitl = hitl or HitlPolicy()
        self._target = target
        self._on_obligations = on_obligations
        self._context = context

    async def list_tools(self) -> ListToolsResult:
        """The server's tools, as the session lists them."""
        return await self.session.list_tools()

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        """Decide the call, then make it on allow; a refusal is a tool error with the reasons."""
        listed = {tool.name: tool for tool in (await self.session.list_tools()).tools}
        described = listed.get(name)
        checked = guard(
            self.gate,
            action=name,
            arguments=arguments or {},
            target=self._target,
            side_effects=_side_effects(described),
            reversible=not _destructive(described),
            tool=ToolDescriptor(
                server=self.server, digest=tool_digest(described) if described else NO_DIGEST
            ),
            hitl=self.hitl,
            on_obligations=self._on_obligations,
            context=self._context,
        )
        try:
            async with checked:
                return await self.session.call_tool(name, arguments)
        except ApprovalPending as pending:
            return refusal(
                f"{name} waits for human approval {pending.pending.approval_id}", pending
            )
        except ActionDenied as denied:
            return refusal(f"the gate refused {name}", denied)


ServerContext = ServerRequestContext[Any, Any]


def gate_server(
    server: MCPServer,
    gate: AsyncGateClient,
    *,
    context: GateContext | Callable[[ServerContext], GateContext],
    name: str | None = None,
    target: TargetOf = None,
    hitl: HitlPolicy | None = None,
    on_obligations: ObligationHandler | None = None,
) -> None:
    """Put the gate in front of `server`'s tools: a middleware deciding each `tools/call`.

    The descriptor digest is that of the tool as `server` lists it; `name` is sent as
    `tool.server`. A refusal is answered as an MCP tool error with the reasons.
    """

    async def maestro_gate(ctx: ServerContext, call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        tool_name, arguments = params.get("name"), params.get("arguments") or {}
        if ctx.method != "tools/call" or not isinstance(tool_name, str):
            return await call_next(ctx)  # the SDK refuses a malformed call itself
        if not isinstance(arguments, dict):
            return refusal_text(f"the gate refused {tool_name}: arguments are not an object")
        listed = {tool.name: tool for tool in await server.list_tools()}
        described = listed.get(tool_name)
        acting = context(ctx) if callable(context) else context
        checked = guard(
            gate,
            action=tool_name,
            arguments=arguments,
            target=target,
            side_effects=_side_effects(described),
            reversible=not _destructive(described),
            tool=ToolDescriptor(
                server=name, digest=tool_digest(described) if described else NO_DIGEST
            ),
            hitl=hitl,
            on_obligations=on_obligations,
            context=acting,
        )
        try:
            async with checked:
                return await call_next(ctx)
        except ApprovalPending as pending:
            return refusal(
                f"{tool_name} waits for human approval {pending.pending.approval_id}", pending
            )
        except ActionDenied as denied:
            return refusal(f"the gate refused {tool_name}", denied)

    server.middleware.append(maestro_gate)


def refusal_text(text: str) -> CallToolResult:
    """An MCP tool error with `text`."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def refusal(message: str, denied: ActionDenied) -> CallToolResult:
    """An MCP tool error naming each of the gate's reasons (rule, threats, message)."""
    lines = [message + "."]
    lines += [f"- {r.rule} [{', '.join(r.threats)}]: {r.message}" for r in denied.reasons]
    return refusal_text("\n".join(lines))


def _side_effects(tool: Tool | None) -> list[str]:
    hints = tool.annotations if tool else None
    if hints is None:
        return []
    effects = []
    if hints.read_only_hint is False:
        effects.append("write")
    if hints.open_world_hint:
        effects.append("external")
    return effects


def _destructive(tool: Tool | None) -> bool:
    hints = tool.annotations if tool else None
    return bool(hints and hints.destructive_hint)
