"""An MCP server's tools behind the gate (mcp SDK, in process). Run: python examples/mcp_gateway.py"""

from __future__ import annotations

import anyio
import mcp
from local_gate import gate
from mcp.server.mcpserver import MCPServer

from maestro_gate.client import AsyncGateClient, acting_as
from maestro_gate.client.mcp import GatedMCPClient

server = MCPServer("tools")


@server.tool(description="Search the documentation.")
def web_search(query: str) -> str:
    return f"results for {query!r}"


@server.tool(description="Run a shell command.")
def shell_exec(command: str) -> str:
    raise AssertionError("never runs: the gate denies shell_exec")


async def main(url: str, key: str) -> None:
    async with AsyncGateClient(url, api_key=key) as client, mcp.Client(server) as session:
        tools = GatedMCPClient(session, client, server="mcp://tools.local")
        with acting_as("spiffe://corp.example/agent/analyst", session_id="s-1"):
            for name, args in [("web_search", {"query": "mcp"}), ("shell_exec", {"command": "id"})]:
                result = await tools.call_tool(name, args)
                print(name, "error" if result.is_error else "ok", result.content[0].text)  # type: ignore[union-attr]


with gate() as (url, key):
    anyio.run(main, url, key)
