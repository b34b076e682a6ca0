"""What the gate itself reads from the active bundle's registry: agent classes and tool costs.

The policies reason over the whole registry; the DecisionPoint needs three facts of it in
Python: an agent's `class` (an emergency stop may name a class), a tool's `cost` (a budget is
reserved before evaluation) and a tool's `input_schema` (arguments are validated in Python,
core/decision/arguments.py). A local engine replaces them whenever it activates a bundle; an
OPA server's registry is not visible here, so they stay empty.
"""

from __future__ import annotations

from typing import Any

from maestro_gate.core.decision.arguments import ToolSchemas


class RegistryFacts:
    """Agent classes and tool costs of the active bundle; replaced whole on activation."""

    def __init__(self) -> None:
        self._classes: dict[str, str] = {}
        self._costs: dict[str, object] = {}
        self._schemas = ToolSchemas()

    def agent_class(self, agent_id: str) -> str | None:
        """The registry `class` of an agent, or None."""
        return self._classes.get(agent_id)

    def tool_cost(self, tool: str) -> object:
        """The registry `cost` of a tool (None for an uncosted one)."""
        return self._costs.get(tool)

    def argument_check(self, tool: str, arguments: Any) -> dict[str, Any] | None:
        """The arguments checked against the tool's `input_schema`; None without one."""
        return self._schemas.check(tool, arguments)

    def replace(self, data: dict[str, Any]) -> None:
        """Take the facts of a newly activated bundle's data document."""
        self._classes = agent_classes(data)
        self._costs = tool_costs(data)
        self._schemas = ToolSchemas(data)


def agent_classes(data: dict[str, Any]) -> dict[str, str]:
    """Agent id to registry `class`, from a bundle's data document."""
    agents = data.get("maestro", {}).get("registry", {}).get("agents", {})
    if not isinstance(agents, dict):
        return {}
    return {
        agent: str(entry["class"])
        for agent, entry in agents.items()
        if isinstance(entry, dict) and entry.get("class") is not None
    }


def tool_costs(data: dict[str, Any]) -> dict[str, object]:
    """Tool name to registry `cost`, from a bundle's data document (L6.budget_exhausted's)."""
    tools = data.get("maestro", {}).get("registry", {}).get("tools", {})
    if not isinstance(tools, dict):
        return {}
    return {
        name: entry["cost"]
        for name, entry in tools.items()
        if isinstance(entry, dict) and "cost" in entry
    }
