"""The reports by name, each wrapped in its envelope: what the CLI and the HTTP routes call."""

from __future__ import annotations

from typing import Any

from maestro_gate.core.catalog.coverage import CoverageReport
from maestro_gate.core.catalog.model import Catalog
from maestro_gate.core.errors import NotFound
from maestro_gate.posture import (
    blast,
    classification,
    orchestrator,
    permissions,
    probe,
    replay,
    topology,
    traffic,
)
from maestro_gate.posture.envelope import envelope
from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.window import Window


async def topology_report(
    registry: Registry, window: Window, prober: probe.Prober | None
) -> dict[str, Any]:
    """Step 1 (see posture/topology.py)."""
    return envelope(
        topology.SCHEMA, registry, window, await topology.report(registry, window, prober)
    )


async def permissions_report(
    registry: Registry, window: Window, prober: probe.Prober | None
) -> dict[str, Any]:
    """Step 2 (see posture/permissions.py)."""
    body = await permissions.report(registry, window, prober)
    return envelope(permissions.SCHEMA, registry, window, body)


def classification_report(registry: Registry, window: Window) -> dict[str, Any]:
    """Step 3 (see posture/classification.py)."""
    return envelope(
        classification.SCHEMA, registry, window, classification.report(registry, window)
    )


def compromised_agents(registry: Registry, agents: list[str], agent_class: str | None) -> list[str]:
    """The agents named (full ids, or the last segment of one) plus those of `agent_class`;
    NotFound when a name matches no registered agent (or several), a class has no agent, or
    nothing is named: the registry has no such agent to assume compromised."""
    found: list[str] = []
    for name in agents:
        matches = [a for a in registry.agents if a == name or a.rsplit("/", 1)[-1] == name]
        if len(matches) != 1:
            raise NotFound(f"{name!r} names {len(matches)} registered agents, not one")
        found.append(matches[0])
    if agent_class is not None:
        members = registry.agents_of_class(agent_class)
        if not members:
            raise NotFound(f"no registered agent has class {agent_class!r}")
        found.extend(members)
    if not found:
        raise NotFound("name an agent (or several) or an agent class assumed compromised")
    return sorted(set(found))


def max_depth_of(registry: Registry, requested: int | None) -> int:
    """The walk's depth: as requested, else the registry's `max_chain_depth`, else 4."""
    if requested is not None:
        return requested
    depth = registry.data.get("thresholds", {}).get("max_chain_depth")
    return depth if isinstance(depth, int) and depth > 0 else 4


async def blast_report(
    registry: Registry, compromised: list[str], prober: probe.Prober, max_depth: int | None
) -> dict[str, Any]:
    """Step 5 (see posture/blast.py)."""
    depth = max_depth_of(registry, max_depth)
    body = await blast.report(registry, compromised, prober, depth)
    return envelope(blast.SCHEMA, registry, None, body)


def compare_report(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Two blast-radius reports and what the change from the first to the second does."""
    return {
        "schema": blast.SCHEMA,
        "generated_at": after["generated_at"],
        "compromised": after["compromised"],
        "before": {k: before[k] for k in ("registry", "highest_classification", "totals", "bound")},
        "after": {k: after[k] for k in ("registry", "highest_classification", "totals", "bound")},
        "compare": blast.compare(before, after),
    }


def orchestrator_report(
    registry: Registry,
    catalog: Catalog,
    coverage: CoverageReport,
    window: Window,
    agents: list[str],
) -> dict[str, Any]:
    """Step 4 (see posture/orchestrator.py); `agents` empty: every orchestrating agent."""
    chosen = compromised_agents(registry, agents, None) if agents else []
    body = orchestrator.report(registry, catalog, coverage, window, chosen)
    return envelope(orchestrator.SCHEMA, registry, window, body)


def coverage_traffic_report(
    registry: Registry, coverage: CoverageReport, window: Window
) -> dict[str, Any]:
    """Step 7 (see posture/traffic.py)."""
    return envelope(traffic.SCHEMA, registry, window, traffic.report(coverage, window))


async def replay_report(
    candidate: Registry, records: list[dict[str, Any]], replayer: replay.Replayer
) -> dict[str, Any]:
    """Step 6 (see posture/replay.py): `records` re-evaluated on the candidate bundle."""
    body = await replay.report(records, replayer)
    body["log"] = {
        "decisions": len(records),
        "first_index": records[0].get("index") if records else None,
        "last_index": records[-1].get("index") if records else None,
    }
    return envelope(replay.SCHEMA, candidate, None, body)
