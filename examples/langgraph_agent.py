"""A LangGraph ReAct agent whose tools the gate guards; the model is langchain-core's scripted
fake, so nothing is called over the network. Run: python examples/langgraph_agent.py"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent
from local_gate import gate

from maestro_gate.client import GateClient, acting_as
from maestro_gate.client.langchain import gate_tools


class ScriptedModel(GenericFakeChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


@tool
def web_search(query: str) -> str:
    """Search the web."""
    return f"results for {query!r}"


@tool
def shell_exec(command: str) -> str:
    """Run a shell command."""
    raise AssertionError("never runs: the gate denies shell_exec")


calls = [{"name": "web_search", "args": {"query": "maestro"}, "id": "1"},
         {"name": "shell_exec", "args": {"command": "id"}, "id": "2"}]
model = ScriptedModel(messages=iter([AIMessage(content="", tool_calls=calls), AIMessage(content="done")]))

with gate() as (url, key), GateClient(url, api_key=key) as client:
    agent = create_react_agent(model, gate_tools([web_search, shell_exec], client))
    with acting_as("spiffe://corp.example/agent/analyst", session_id="s-1"):
        result = agent.invoke({"messages": [("user", "look it up")]})
    for message in result["messages"]:
        if isinstance(message, ToolMessage):
            print(message.name, message.status, message.content)
