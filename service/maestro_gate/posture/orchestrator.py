"""Step 4, the orchestrator's threat model: a STRIDE table per orchestrating agent.

Each STRIDE category (catalog `crosswalk_stride.json`) lists the catalog threats it maps to,
the bundle's rules citing any of them (from their METADATA, as `catalog coverage` reads them)
with their tests, and the denials and escalations those rules gave the agent in the window
(as the subject, or as a delegator on the request's chain). A category no rule enforces is a
`gap`; one enforced but silent in the window is `quiet`; one whose rules fired is `fired`.
An agent is orchestrating when its registry `role` or `class` names orchestration.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from maestro_gate.core.catalog.coverage import CoverageReport
from maestro_gate.core.catalog.model import Catalog
from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.window import Window

SCHEMA = "maestro-gate/posture/orchestrator/v1"


def orchestrators(registry: Registry) -> list[str]:
    """Agents whose registry role or class names orchestration."""
    return sorted(
        agent
        for agent, entry in registry.agents.items()
        if any("orchestrat" in str(entry.get(key, "")).lower() for key in ("role", "class"))
    )


def involves(record: dict[str, Any], agent: str) -> bool:
    """Whether `agent` made the request, or delegated along the chain that led to it."""
    request = record.get("input") or {}
    if (request.get("subject") or {}).get("id") == agent:
        return True
    chain = (request.get("context") or {}).get("delegation_chain") or []
    return any(isinstance(hop, dict) and hop.get("delegator") == agent for hop in chain)


def fired(window: Window, agent: str) -> tuple[Counter[str], Counter[str]]:
    """Per rule, the agent's denials and escalations in the window."""
    denials: Counter[str] = Counter()
    escalations: Counter[str] = Counter()
    for record in window.records:
        if not involves(record, agent):
            continue
        rules = record.get("rules") or []
        if record.get("decision") == "deny":
            denials.update(rules)
        elif record.get("decision") == "require_hitl":
            escalations.update(rules)
    return denials, escalations


def table(
    catalog: Catalog, coverage: CoverageReport, window: Window, agent: str
) -> list[dict[str, Any]]:
    """The agent's STRIDE rows."""
    denials, escalations = fired(window, agent)
    rows = []
    for category in catalog.stride:
        wanted = set(category.threats)
        rules = [rule for rule in coverage.rules if wanted & set(rule.threats)]
        enforced: list[dict[str, Any]] = [
            {
                "rule": rule.rule,
                "layer": rule.layer,
                "threats": sorted(wanted & set(rule.threats), key=_number),
                "tests": list(rule.tests),
                "denials": denials[rule.rule],
                "escalations": escalations[rule.rule],
            }
            for rule in rules
        ]
        cited = {t for rule in rules for t in rule.threats}
        total = sum(r["denials"] + r["escalations"] for r in enforced)
        rows.append(
            {
                "category": category.id,
                "letter": category.letter,
                "name": category.name,
                "question": category.question,
                "threats": [
                    {"id": t, "name": _name(catalog, t), "enforced": t in cited}
                    for t in category.threats
                ],
                "rules": enforced,
                "denials": sum(r["denials"] for r in enforced),
                "escalations": sum(r["escalations"] for r in enforced),
                "status": "gap" if not enforced else ("fired" if total else "quiet"),
                "threats_without_rule": [t for t in category.threats if t not in cited],
            }
        )
    return rows


def report(
    registry: Registry,
    catalog: Catalog,
    coverage: CoverageReport,
    window: Window,
    agents: list[str] | None = None,
) -> dict[str, Any]:
    """The orchestrator report (schema `SCHEMA`): one STRIDE table per orchestrating agent."""
    chosen = agents if agents else orchestrators(registry)
    tables: list[dict[str, Any]] = [
        {"agent": agent, "stride": table(catalog, coverage, window, agent)} for agent in chosen
    ]
    return {
        "orchestrators": tables,
        "gaps": [
            {"agent": t["agent"], "category": row["category"]}
            for t in tables
            for row in t["stride"]
            if row["status"] == "gap"
        ],
    }


def _name(catalog: Catalog, threat_id: str) -> str | None:
    threat = catalog.threat(threat_id)
    return threat.name if threat else None


def _number(threat_id: str) -> int:
    return int(threat_id[1:]) if threat_id[1:].isdigit() else 10**6
