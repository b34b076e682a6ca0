"""An OpenAI Agents SDK agent whose function tools the gate guards, on a scripted Model (no
network). Run: python examples/openai_agents_guardrail.py"""

from __future__ import annotations

import json
from typing import Any

import anyio
from agents import Agent, Model, ModelResponse, RunConfig, Runner
from agents.usage import Usage
from local_gate import gate
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from maestro_gate.client import AsyncGateClient, acting_as
from maestro_gate.client.openai_agents import gated_function_tool


class ScriptedModel(Model):
    def __init__(self) -> None:
        self.turn = 0

    async def get_response(self, system_instructions: Any, input: Any, *a: Any, **k: Any) -> ModelResponse:
        self.turn += 1
        if self.turn == 1:
            calls = [("web_search", {"query": "maestro"}), ("shell_exec", {"command": "id"})]
            output: list[Any] = [
                ResponseFunctionToolCall(type="function_call", name=n, arguments=json.dumps(a_), call_id=f"c{i}")
                for i, (n, a_) in enumerate(calls)
            ]
        else:
            for item in input:
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    print(item["call_id"], item["output"])
            output = [ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                      content=[ResponseOutputText(type="output_text", text="done", annotations=[])])]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError


def web_search(query: str) -> str:
    """Search the web."""
    return f"results for {query!r}"


def shell_exec(command: str) -> str:
    """Run a shell command."""
    raise AssertionError("never runs: the gate denies shell_exec")


async def main(url: str, key: str) -> None:
    async with AsyncGateClient(url, api_key=key) as client:
        tools = [gated_function_tool(fn, client) for fn in (web_search, shell_exec)]
        agent = Agent(name="analyst", tools=tools, model=ScriptedModel())
        with acting_as("spiffe://corp.example/agent/analyst", session_id="s-1"):
            result = await Runner.run(agent, "look it up", run_config=RunConfig(tracing_disabled=True))
    print("final:", result.final_output)


with gate() as (url, key):
    anyio.run(main, url, key)
