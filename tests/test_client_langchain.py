"""The LangChain/LangGraph adapter with the real packages: a prebuilt ReAct agent graph driven
by langchain-core's fake chat model (scripted tool calls, no model service), its tools gated by
the real gate on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

from maestro_gate.client import AsyncGateClient, GateClient, GateUnavailable, Retry, acting_as
from maestro_gate.client.langchain import gate_tools
from tests.auth_support import ANALYST, records
from tests.client_support import Gate, real_gate

# The prebuilt ReAct graph is the one the issue names; langgraph 1.x points to langchain.agents.
pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")


class ScriptedModel(GenericFakeChatModel):
    """The fake chat model, accepting tools (it answers from its script whatever they are)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        """The model itself: its messages are scripted."""
        return self


def script(*calls: tuple[str, dict[str, Any]]) -> ScriptedModel:
    """A model that asks for `calls` (all in one turn), then says it is done."""
    asked = AIMessage(
        content="",
        tool_calls=[{"name": n, "args": a, "id": f"call-{i}"} for i, (n, a) in enumerate(calls)],
    )
    return ScriptedModel(messages=iter([asked, AIMessage(content="done")]))


RAN: list[str] = []


@tool
def web_search(query: str) -> str:
    """Search the web."""
    RAN.append(f"search {query}")
    return f"results for {query}"


@tool("shell.exec")
def shell(command: str) -> str:
    """Run a shell command."""
    RAN.append(f"shell {command}")
    return "ran"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The real gate on loopback; the tools' run log cleared."""
    RAN.clear()
    with real_gate(tmp_path) as served:
        yield served


def tool_messages(result: dict[str, Any]) -> dict[str, ToolMessage]:
    """The graph's tool messages by tool name."""
    return {m.name: m for m in result["messages"] if isinstance(m, ToolMessage)}


def test_a_react_agent_runs_allowed_tools_and_reads_the_reasons_of_denied_ones(gate: Gate) -> None:
    """Allowed tools run; a denied one is a ToolMessage with status error and the reasons."""
    calls = [("web_search", {"query": "maestro"}), ("shell.exec", {"command": "id"})]
    with GateClient(gate.url, api_key=gate.keys["runtime"]) as client:
        agent = create_react_agent(
            script(*calls), gate_tools([web_search, shell], client, on_obligations=lambda *_: None)
        )
        with acting_as(ANALYST, session_id="s-lg", trace_id="t-lg"):
            result = agent.invoke({"messages": [("user", "look it up")]})
    messages = tool_messages(result)
    assert (messages["web_search"].status, messages["web_search"].content) == (
        "success",
        "results for maestro",
    )
    assert messages["shell.exec"].status == "error"
    assert "L3.tool_not_allowlisted" in str(messages["shell.exec"].content)
    assert RAN == ["search maestro"]
    decided = [r for r in records(gate.settings) if r["type"] == "decision"]
    assert sorted((r["input"]["action"], r["decision"]) for r in decided) == [
        ("shell.exec", "deny"),
        ("web_search", "allow"),
    ]
    assert {r["input"]["subject"]["session_id"] for r in decided} == {"s-lg"}
    assert result["messages"][-1].content == "done"


def test_the_async_graph_with_an_async_client(gate: Gate) -> None:
    """`ainvoke` with an AsyncGateClient: the same gating, on the event loop."""

    async def main() -> dict[str, Any]:
        async with AsyncGateClient(gate.url, api_key=gate.keys["runtime"]) as client:
            tools = gate_tools([web_search, shell], client, on_obligations=lambda *_: None)
            agent = create_react_agent(script(("shell.exec", {"command": "id"})), tools)
            with acting_as(ANALYST):
                return await agent.ainvoke({"messages": [("user", "run it")]})

    messages = tool_messages(anyio.run(main))
    assert messages["shell.exec"].status == "error"
    assert RAN == []


def test_an_unreachable_gate_stops_the_graph(gate: Gate) -> None:
    """No gate: the graph raises, the tool never ran."""
    with GateClient("http://127.0.0.1:9", retry=Retry(attempts=1)) as nowhere:
        agent = create_react_agent(
            script(("web_search", {"query": "x"})),
            gate_tools([web_search], nowhere, on_obligations=lambda *_: None),
        )
        with acting_as(ANALYST), pytest.raises(GateUnavailable):
            agent.invoke({"messages": [("user", "look it up")]})
    assert RAN == []


@tool("payments.refund")
def refund(amount: int) -> str:
    """Refund a payment."""
    RAN.append(f"refund {amount}")
    return "refunded"


def test_require_hitl_under_the_pending_policy_is_an_error_naming_the_approval(gate: Gate) -> None:
    """A refund needs a human: with `pending` the model reads at once the approval it waits for."""
    from maestro_gate.client import HitlPolicy

    with GateClient(gate.url, api_key=gate.keys["runtime"]) as client:
        tools = gate_tools(
            [refund], client, hitl=HitlPolicy(on_hitl="pending"), on_obligations=lambda *_: None
        )
        agent = create_react_agent(script(("payments.refund", {"amount": 5})), tools)
        with acting_as(ANALYST):
            result = agent.invoke({"messages": [("user", "refund it")]})
    message = tool_messages(result)["payments.refund"]
    assert message.status == "error"
    assert "waits for human approval" in str(message.content)
    assert "L2.refund_review" in str(message.content)
    assert RAN == []
