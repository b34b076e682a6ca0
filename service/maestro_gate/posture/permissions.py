"""Step 2, tool permissions per agent: granted, used, attempted and denied, unused, uncovered.

`unused` grants (granted, no allowed or escalated call in the window) are ranked by the risk
of the grant (registry.RISK_WEIGHTS: irreversible, code execution, external side effects,
routing changes, secrets within reach, network, writes). A risky grant is `uncovered` when the
policy, asked with the most favourable request for it, allows it outright: no HITL or dual
control rule stands between the agent and the tool.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from maestro_gate.posture import probe
from maestro_gate.posture.registry_view import RISKY, Registry
from maestro_gate.posture.window import Window

SCHEMA = "maestro-gate/posture/permissions/v1"


def calls(window: Window) -> dict[str, dict[str, Counter[str]]]:
    """Agent to tool to decision counts, from the window's agent actions."""
    found: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for record in window.of_kind("agent_action"):
        request = record.get("input") or {}
        agent = (request.get("subject") or {}).get("id")
        tool = request.get("action")
        if isinstance(agent, str) and isinstance(tool, str):
            found[agent][tool][str(record.get("decision"))] += 1
    return found


def denial_rules(window: Window) -> dict[tuple[str, str], Counter[str]]:
    """(agent, tool) to the rules of its denied calls."""
    found: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for record in window.of_kind("agent_action"):
        if record.get("decision") != "deny":
            continue
        request = record.get("input") or {}
        key = (str((request.get("subject") or {}).get("id")), str(request.get("action")))
        found[key].update(record.get("rules") or [])
    return found


async def report(registry: Registry, window: Window, prober: probe.Prober | None) -> dict[str, Any]:
    """The permissions report (schema `SCHEMA`): one entry per agent, and the ranked findings."""
    seen = calls(window)
    rules = denial_rules(window)
    risky = [
        (agent, tool)
        for agent in sorted(registry.agents)
        for tool in registry.grants(agent)
        if RISKY & set(registry.risk(agent, tool)[1])
    ]
    verdicts: dict[tuple[str, str], probe.Verdict] = {}
    if prober is not None:
        asked = [probe.tool_call(registry, agent, tool, []) for agent, tool in risky]
        verdicts = dict(zip(risky, await prober.ask_all(asked), strict=True))
    agents = []
    unused_all: list[dict[str, Any]] = []
    uncovered_all: list[dict[str, Any]] = []
    for agent in sorted(set(registry.agents) | set(seen)):
        used = seen.get(agent, {})
        granted = registry.grants(agent)
        unused = [grant(registry, agent, t) for t in granted if not _exercised(used.get(t))]
        unused.sort(key=lambda g: (-g["risk"], g["tool"]))
        uncovered = [
            {**grant(registry, agent, tool), "policy": verdicts[(agent, tool)].as_json()}
            for tool in granted
            if (agent, tool) in verdicts and verdicts[(agent, tool)].decision == "allow"
        ]
        agents.append(
            {
                "agent": agent,
                "registered": agent in registry.agents,
                "granted": granted,
                "used": {t: c["allow"] for t, c in sorted(used.items()) if c["allow"]},
                "escalated": {
                    t: c["require_hitl"] for t, c in sorted(used.items()) if c["require_hitl"]
                },
                "denied": {
                    t: {"count": c["deny"], "rules": dict(sorted(rules[(agent, t)].items()))}
                    for t, c in sorted(used.items())
                    if c["deny"]
                },
                "unused": unused,
                "uncovered_risky": uncovered,
            }
        )
        unused_all.extend({"agent": agent, **g} for g in unused)
        uncovered_all.extend({"agent": agent, **g} for g in uncovered)
    unused_all.sort(key=lambda g: (-g["risk"], g["agent"], g["tool"]))
    return {
        "agents": agents,
        "unused_ranked": unused_all,
        "uncovered_risky": uncovered_all,
        "policy_asked": prober is not None,
        "bound": prober.bound() if prober is not None else None,
    }


def grant(registry: Registry, agent: str, tool: str) -> dict[str, Any]:
    """A grant with its risk score and factors."""
    score, factors = registry.risk(agent, tool)
    return {"tool": tool, "risk": score, "factors": factors}


def _exercised(counts: Counter[str] | None) -> bool:
    return counts is not None and (counts["allow"] + counts["require_hitl"]) > 0
