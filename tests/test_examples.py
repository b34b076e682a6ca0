"""Every example in examples/ runs offline against its own local gate and shows allow and deny."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    "script",
    ["guard_decorator.py", "mcp_gateway.py", "langgraph_agent.py", "openai_agents_guardrail.py"],
)
def test_example_runs_offline_and_the_gate_refuses_the_shell(script: str) -> None:
    """The script exits 0 and prints the gate's L3 refusal of the shell tool."""
    done = subprocess.run(
        [sys.executable, script], cwd=EXAMPLES, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "L3.tool_not_allowlisted" in done.stdout
