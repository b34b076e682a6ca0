"""Step 1, the agent communication topology: declared edges against observed traffic.

An edge is an ordered pair of agents. Observed edges come from the window's delegations
(subject to delegatee) and data movements whose source and destination are both agents. A
delegation edge is declared when the delegator lists the delegatee; a data movement between two
agents is declared when either delegates to the other (a delegate hands its results back).
`undeclared_allowed` are the edges no delegation declares that the policy allows anyway, asked
of the engine (a delegation and an internal-data copy for every undeclared pair) or seen allowed
in the window: paths that exist by accident.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.posture import probe
from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.window import Window

SCHEMA = "maestro-gate/posture/topology/v1"


@dataclass
class Edge:
    """One agent-to-agent edge of one kind, with what the window and the policy say of it."""

    source: str
    target: str
    kind: str
    declared: bool
    observed: Counter[str] = field(default_factory=Counter)
    stopped_by: Counter[str] = field(default_factory=Counter)
    decision_ids: list[str] = field(default_factory=list)
    policy: probe.Verdict | None = None

    @property
    def status(self) -> str:
        """`used`, `denied`, `declared_unused`, `undeclared_allowed` or `undeclared_denied`."""
        allowed = self.observed["allow"] > 0 or (
            self.policy is not None and self.policy.decision in ("allow", "require_hitl")
        )
        if not self.declared and allowed:
            return "undeclared_allowed"
        if self.observed["allow"] or self.observed["require_hitl"]:
            return "used"
        if self.observed["deny"]:
            return "denied"
        return "declared_unused" if self.declared else "undeclared_denied"

    def as_json(self) -> dict[str, Any]:
        """The edge as the report's schema writes it."""
        return {
            "from": self.source,
            "to": self.target,
            "kind": self.kind,
            "declared": self.declared,
            "status": self.status,
            "observed": {d: self.observed[d] for d in ("allow", "deny", "require_hitl")},
            "stopped_by": dict(sorted(self.stopped_by.items())),
            "allowed_decision_ids": self.decision_ids[:20],
            "policy": self.policy.as_json() if self.policy else None,
        }


def observed_edge(record: dict[str, Any]) -> tuple[str, str, str] | None:
    """The `(from, to, kind)` agent edge a decision record shows, if it shows one."""
    request = record.get("input") or {}
    subject = (request.get("subject") or {}).get("id")
    if record.get("kind") == "delegation":
        delegatee = request.get("delegatee")
        if isinstance(subject, str) and isinstance(delegatee, str):
            return subject, delegatee, "delegation"
    if record.get("kind") == "data_movement":
        source, destination = request.get("source") or {}, request.get("destination") or {}
        if source.get("type") == "agent" and destination.get("type") == "agent":
            return str(source.get("id")), str(destination.get("id")), "data_movement"
    return None


def is_declared(registry: Registry, source: str, target: str, kind: str) -> bool:
    """Whether the registry declares the edge (see the module docstring)."""
    declared = registry.declared_edges()
    if kind == "delegation":
        return (source, target) in declared
    return (source, target) in declared or (target, source) in declared


def observe(registry: Registry, window: Window) -> dict[tuple[str, str, str], Edge]:
    """Every declared edge, and every edge the window shows, with its counts."""
    edges: dict[tuple[str, str, str], Edge] = {}
    for source, target in sorted(registry.declared_edges()):
        edges[(source, target, "delegation")] = Edge(source, target, "delegation", True)
    for record in window.records:
        found = observed_edge(record)
        if found is None:
            continue
        edge = edges.get(found)
        if edge is None:
            edge = edges[found] = Edge(*found, declared=is_declared(registry, *found))
        decision = str(record.get("decision"))
        edge.observed[decision] += 1
        if decision == "deny":
            edge.stopped_by.update(record.get("rules") or [])
        elif decision == "allow":
            edge.decision_ids.append(str(record.get("decision_id")))
    return edges


async def ask_policy(
    registry: Registry, edges: dict[tuple[str, str, str], Edge], prober: probe.Prober
) -> None:
    """Ask the engine about every ordered pair of agents: a delegation and an agent-to-agent
    copy of data at the lowest classification; record the verdicts on the edges."""
    lowest = registry.levels[0] if registry.levels else "public"
    keys: list[tuple[str, str, str]] = []
    requests: list[dict[str, Any]] = []
    for source in sorted(registry.agents):
        for target in sorted(registry.agents):
            if source == target:
                continue
            keys.append((source, target, "delegation"))
            requests.append(probe.delegation(source, target, [], []))
            keys.append((source, target, "data_movement"))
            requests.append(
                probe.movement(
                    source, ("agent", source), ("agent", target), "copy", lowest, None, []
                )
            )
    for key, verdict in zip(keys, await prober.ask_all(requests), strict=True):
        edge = edges.get(key)
        if edge is None:
            edge = Edge(*key, declared=is_declared(registry, *key))
            if edge.declared or verdict.decision not in ("allow", "require_hitl"):
                continue  # only undeclared paths the policy opens are news
            edges[key] = edge
        edge.policy = verdict


async def report(registry: Registry, window: Window, prober: probe.Prober | None) -> dict[str, Any]:
    """The topology report (schema `SCHEMA`): edges, the four findings and the DOT graph."""
    edges = observe(registry, window)
    if prober is not None:
        await ask_policy(registry, edges, prober)
    ordered = [edges[k] for k in sorted(edges)]
    rows = [e.as_json() for e in ordered]
    body: dict[str, Any] = {
        "agents": sorted(registry.agents),
        "edges": rows,
        "observed_allowed": [r for r in rows if r["observed"]["allow"]],
        "observed_denied": [r for r in rows if r["observed"]["deny"]],
        "declared_unused": [r for r in rows if r["status"] == "declared_unused"],
        "undeclared_allowed": [r for r in rows if r["status"] == "undeclared_allowed"],
        "policy_asked": prober is not None,
        "bound": prober.bound() if prober is not None else None,
    }
    body["dot"] = dot(body)
    return body


STYLE = {
    "used": 'color="darkgreen"',
    "denied": 'color="red", style="dashed"',
    "declared_unused": 'color="gray", style="dotted"',
    "undeclared_allowed": 'color="orange", penwidth=2',
    "undeclared_denied": 'color="red", style="dotted"',
}


def short(agent: str) -> str:
    """The last path segment of an agent id, as a graph label."""
    return agent.rstrip("/").rsplit("/", 1)[-1]


def dot(body: dict[str, Any]) -> str:
    """The topology as a Graphviz digraph: one node per agent, one edge per row."""
    lines = ["digraph topology {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for agent in body["agents"]:
        lines.append(f"  {quote(agent)} [label={quote(short(agent))}];")
    for row in body["edges"]:
        counts = row["observed"]
        label = f"{row['kind']} {row['status']} a{counts['allow']}/d{counts['deny']}"
        label += f"/h{counts['require_hitl']}"
        attributes = f"{STYLE[row['status']]}, label={quote(label)}"
        lines.append(f"  {quote(row['from'])} -> {quote(row['to'])} [{attributes}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def quote(text: str) -> str:
    """A DOT double-quoted ID."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
