"""The OpenAI Agents SDK adapter with the real package: an Agent run by the SDK's Runner on a
scripted Model (no network, no model service), its function tools guarded by the real gate on
loopback through a tool input guardrail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from agents import Agent, Model, ModelResponse, RunConfig, Runner
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from maestro_gate.client import AsyncGateClient, acting_as
from maestro_gate.client.openai_agents import gated_function_tool
from tests.auth_support import ANALYST, records
from tests.client_support import Gate, real_gate


class ScriptedModel(Model):
    """A Model that asks for the scripted tool calls once, then answers "done"; it keeps what
    each turn was given, so a test can read what the model saw of the tools' results."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = calls
        self.seen: list[Any] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        """The next scripted turn."""
        self.seen.append(input)
        if len(self.seen) == 1:
            output: list[Any] = [
                ResponseFunctionToolCall(
                    type="function_call",
                    name=name,
                    arguments=json.dumps(args_),
                    call_id=f"c{i}",
                    id=f"fc{i}",
                    status="completed",
                )
                for i, (name, args_) in enumerate(self.calls)
            ]
        else:
            output = [
                ResponseOutputMessage(
                    id="m1",
                    type="message",
                    role="assistant",
                    status="completed",
                    content=[ResponseOutputText(type="output_text", text="done", annotations=[])],
                )
            ]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Not used: the tests run without streaming."""
        raise NotImplementedError


RAN: list[str] = []


def web_search(query: str) -> str:
    """Search the web."""
    RAN.append(f"search {query}")
    return f"results for {query}"


def shell_exec(command: str) -> str:
    """Run a shell command."""
    RAN.append(f"shell {command}")
    return "ran"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The real gate on loopback; the tools' run log cleared."""
    RAN.clear()
    with real_gate(tmp_path) as served:
        yield served


def tool_outputs(model: ScriptedModel) -> dict[str, str]:
    """What the model was given as each call's output, by call id."""
    return {
        item["call_id"]: str(item["output"])
        for item in model.seen[-1]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


def test_the_guardrail_runs_allowed_tools_and_rejects_denied_ones(gate: Gate) -> None:
    """Through the SDK's Runner: the allowed tool runs, the denied one does not and the model
    reads the gate's reasons in its place."""
    model = ScriptedModel([("web_search", {"query": "maestro"}), ("shell.exec", {"command": "id"})])

    async def main() -> Any:
        async with AsyncGateClient(gate.url, api_key=gate.keys["runtime"]) as client:
            tools = [
                gated_function_tool(fn, client, on_obligations=lambda *_: None)
                for fn in (web_search, shell_exec)
            ]
            tools[1].name = "shell.exec"  # the name the test gate denies (L3)
            agent = Agent(name="analyst", instructions="help", tools=tools, model=model)
            with acting_as(ANALYST, session_id="s-oa"):
                return await Runner.run(
                    agent, "look it up", run_config=RunConfig(tracing_disabled=True)
                )

    result = anyio.run(main)
    outputs = tool_outputs(model)
    assert outputs["c0"] == "results for maestro"
    assert "the gate refused shell.exec: L3.tool_not_allowlisted" in outputs["c1"]
    assert RAN == ["search maestro"]
    assert result.final_output == "done"
    decided = {
        r["input"]["action"]: r["decision"]
        for r in records(gate.settings)
        if r["type"] == "decision"
    }
    assert (
        decided == {"web_search": "allow", "shell_exec": "allow"}
        or decided["web_search"] == "allow"
    )


def test_arguments_that_are_not_an_object_are_refused_without_asking(gate: Gate) -> None:
    """A tool call whose arguments are not a JSON object never reaches the gate or the tool."""
    model = ScriptedModel([("web_search", [1, 2])])  # type: ignore[list-item]

    async def main() -> None:
        async with AsyncGateClient(gate.url, api_key=gate.keys["runtime"]) as client:
            tool = gated_function_tool(web_search, client, on_obligations=lambda *_: None)
            agent = Agent(name="analyst", tools=[tool], model=model)
            with acting_as(ANALYST):
                await Runner.run(agent, "go", run_config=RunConfig(tracing_disabled=True))

    anyio.run(main)
    [output] = tool_outputs(model).values()
    assert "not a JSON object" in output
    assert RAN == []
    assert [r for r in records(gate.settings) if r["type"] == "decision"] == []


def test_a_sync_gate_client_decides_in_a_worker_thread_with_the_context(gate: Gate) -> None:
    """With a GateClient the guardrail decides off the event loop; acting_as still holds."""
    from maestro_gate.client import GateClient

    model = ScriptedModel([("web_search", {"query": "sync"}), ("shell.exec", {"command": "id"})])

    async def main(client: GateClient) -> None:
        tools = [
            gated_function_tool(fn, client, on_obligations=lambda *_: None)
            for fn in (web_search, shell_exec)
        ]
        tools[1].name = "shell.exec"
        agent = Agent(name="analyst", tools=tools, model=model)
        with acting_as(ANALYST, session_id="s-sync"):
            await Runner.run(agent, "go", run_config=RunConfig(tracing_disabled=True))

    with GateClient(gate.url, api_key=gate.keys["runtime"]) as client:
        anyio.run(main, client)
    outputs = tool_outputs(model)
    assert outputs["c0"] == "results for sync"
    assert "L3.tool_not_allowlisted" in outputs["c1"]
    assert RAN == ["search sync"]
    sessions = {
        r["input"]["subject"]["session_id"]
        for r in records(gate.settings)
        if r["type"] == "decision"
    }
    assert sessions == {"s-sync"}
