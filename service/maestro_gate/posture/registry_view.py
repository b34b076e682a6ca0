"""A read-only view of the bundle's registry (`data.maestro.registry`) for the posture reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RISK_WEIGHTS = {
    "irreversible": 8,
    "code_exec": 8,
    "external": 4,
    "modifies_routing": 4,
    "secrets": 2,
    "network": 1,
    "write": 1,
}
"""Weight of each risk factor of a tool grant; a grant's risk score is the sum of its factors."""

RISKY = frozenset({"irreversible", "code_exec", "external", "modifies_routing"})
"""Factors that make a grant risky enough to want a human (HITL or dual control) in the loop."""


@dataclass(frozen=True)
class Registry:
    """The registry document and the bundle it came with."""

    data: dict[str, Any]
    source: str = "bundle"
    revision: str | None = None
    digest: str | None = None

    @classmethod
    def of_bundle_data(
        cls, data: dict[str, Any], source: str, revision: str | None, digest: str | None
    ) -> Registry:
        """The registry inside a bundle's merged data document."""
        registry = data.get("maestro", {}).get("registry", {})
        return cls(registry if isinstance(registry, dict) else {}, source, revision, digest)

    def section(self, name: str) -> dict[str, dict[str, Any]]:
        """`agents`, `tools`, `stores` or `destinations`: entries that are objects."""
        entries = self.data.get(name, {})
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if isinstance(v, dict)}

    @property
    def agents(self) -> dict[str, dict[str, Any]]:
        """Agent id to entry."""
        return self.section("agents")

    @property
    def tools(self) -> dict[str, dict[str, Any]]:
        """Tool name to entry."""
        return self.section("tools")

    @property
    def stores(self) -> dict[str, dict[str, Any]]:
        """Store id to entry."""
        return self.section("stores")

    @property
    def destinations(self) -> dict[str, dict[str, Any]]:
        """External destination (host) to entry."""
        return self.section("destinations")

    @property
    def levels(self) -> list[str]:
        """The classification order, lowest first."""
        order = self.data.get("classification_order", [])
        return [str(level) for level in order] if isinstance(order, list) else []

    def rank(self, level: object) -> int | None:
        """The position of a classification in the order, or None when it is not one."""
        levels = self.levels
        return levels.index(level) if isinstance(level, str) and level in levels else None

    def delegatees(self, agent: str) -> list[str]:
        """The agents `agent` may delegate to, as the registry declares."""
        found = self.agents.get(agent, {}).get("delegatees", [])
        return [str(d) for d in found] if isinstance(found, list) else []

    def declared_edges(self) -> set[tuple[str, str]]:
        """Every declared delegation edge (delegator, delegatee)."""
        return {(a, d) for a in self.agents for d in self.delegatees(a)}

    def grants(self, agent: str) -> list[str]:
        """The tools the agent's entry allows, sorted."""
        tools = self.agents.get(agent, {}).get("tools", {})
        return sorted(tools) if isinstance(tools, dict) else []

    def scopes(self, agent: str) -> list[str]:
        """The agent's registered scopes."""
        found = self.agents.get(agent, {}).get("scopes", [])
        return [str(s) for s in found] if isinstance(found, list) else []

    def agents_of_class(self, agent_class: str) -> list[str]:
        """Agents whose registry `class` is `agent_class`."""
        return sorted(a for a, e in self.agents.items() if e.get("class") == agent_class)

    def risk(self, agent: str, tool: str) -> tuple[int, list[str]]:
        """The risk score and factors of `agent` holding `tool` (see RISK_WEIGHTS)."""
        entry = self.tools.get(tool, {})
        factors = []
        risk_class = entry.get("risk_class")
        if risk_class in ("irreversible", "code_exec", "write"):
            factors.append(str(risk_class))
        for flag in ("external", "modifies_routing", "network"):
            if entry.get(flag) is True:
                factors.append(flag)
        reaches_out = entry.get("network") is True or risk_class == "code_exec"
        if reaches_out and self.agents.get(agent, {}).get("secrets"):
            factors.append("secrets")  # a network or code tool can carry the agent's secrets out
        return sum(RISK_WEIGHTS[f] for f in factors), factors

    def level_of(self, endpoint_type: str, endpoint_id: str) -> str | None:
        """The classification (stores, tools) or clearance (agents, external) of an endpoint."""
        if endpoint_type == "store":
            value = self.stores.get(endpoint_id, {}).get("classification")
        elif endpoint_type == "agent":
            value = self.agents.get(endpoint_id, {}).get("clearance")
        elif endpoint_type == "external":
            value = self.destinations.get(endpoint_id, {}).get("clearance")
        elif endpoint_type == "tool":
            value = self.tools.get(endpoint_id, {}).get("clearance")
        else:
            value = None
        return value if isinstance(value, str) else None

    def known(self, endpoint_type: str, endpoint_id: str) -> bool:
        """Whether the registry has an entry for the endpoint."""
        section = {
            "store": "stores",
            "agent": "agents",
            "external": "destinations",
            "tool": "tools",
        }.get(endpoint_type)
        return section is not None and endpoint_id in self.section(section)

    def describe(self) -> dict[str, Any]:
        """Where the registry came from, for a report's header."""
        return {
            "source": self.source,
            "version": self.data.get("version"),
            "bundle_revision": self.revision,
            "bundle_digest": self.digest,
        }
