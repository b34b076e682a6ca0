"""Step 3, classification boundaries: the data movements observed, level against level.

A movement's source level is the highest of the data's declared classification, the source
store's registry classification and that of every registered store in the data's provenance
(data that passed through a restricted store is restricted data); its destination level is the
store's classification, or the clearance of the agent, external destination or tool. A move is
downward when the source level is above the destination level; every allowed one is listed
with its decision id. Registry entries without a level, and endpoints the registry does not
know, are listed: a boundary cannot be verified where nothing is classified.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.window import Window

SCHEMA = "maestro-gate/posture/classification/v1"
UNCLASSIFIED = "(unclassified)"


def source_level(registry: Registry, request: dict[str, Any]) -> str | None:
    """The highest of the data's label, the source store's and its provenance stores' levels."""
    source = request.get("source") or {}
    data = request.get("data") or {}
    candidates = [data.get("classification")]
    if source.get("type") == "store":
        candidates.append(registry.level_of("store", str(source.get("id"))))
    provenance = data.get("provenance") or []
    candidates.extend(registry.level_of("store", str(p)) for p in provenance)
    ranked = [(registry.rank(c), c) for c in candidates if registry.rank(c) is not None]
    return str(max(ranked)[1]) if ranked else None


def destination_level(registry: Registry, request: dict[str, Any]) -> str | None:
    """The destination's classification (store, tool) or clearance (agent, external)."""
    destination = request.get("destination") or {}
    return registry.level_of(str(destination.get("type")), str(destination.get("id")))


def report(registry: Registry, window: Window) -> dict[str, Any]:
    """The classification report (schema `SCHEMA`): matrix, downward moves, unclassified."""
    matrix: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    downward: list[dict[str, Any]] = []
    unknown: Counter[tuple[str, str]] = Counter()
    for record in window.of_kind("data_movement"):
        request = record.get("input") or {}
        low, high = source_level(registry, request), destination_level(registry, request)
        decision = str(record.get("decision"))
        matrix[low or UNCLASSIFIED][high or UNCLASSIFIED][decision] += 1
        for end in ("source", "destination"):
            endpoint = request.get(end) or {}
            kind, name = str(endpoint.get("type")), str(endpoint.get("id"))
            if not registry.known(kind, name):
                unknown[(kind, name)] += 1
        if decision == "allow" and is_downward(registry, low, high):
            downward.append(
                {
                    "decision_id": record.get("decision_id"),
                    "timestamp": record.get("timestamp"),
                    "subject": record.get("subject"),
                    "operation": request.get("operation"),
                    "source": request.get("source"),
                    "destination": request.get("destination"),
                    "from_level": low,
                    "to_level": high,
                }
            )
    levels = [*registry.levels, UNCLASSIFIED]
    return {
        "levels": levels,
        "matrix": [
            {
                "source_level": low,
                "destination_level": high,
                "allow": matrix[low][high]["allow"],
                "deny": matrix[low][high]["deny"],
                "require_hitl": matrix[low][high]["require_hitl"],
            }
            for low in levels
            for high in levels
            if low in matrix and high in matrix[low]
        ],
        "downward_allowed": downward,
        "unclassified": unclassified(registry),
        "unregistered_endpoints": [
            {"type": kind, "id": name, "movements": count}
            for (kind, name), count in sorted(unknown.items())
        ],
    }


def is_downward(registry: Registry, low: str | None, high: str | None) -> bool:
    """Whether a move from level `low` to level `high` goes down the classification order."""
    source, destination = registry.rank(low), registry.rank(high)
    return source is not None and destination is not None and source > destination


def unclassified(registry: Registry) -> dict[str, list[str]]:
    """Stores without a classification, agents and destinations without a clearance."""
    return {
        "stores": sorted(s for s in registry.stores if registry.level_of("store", s) is None),
        "agents": sorted(a for a in registry.agents if registry.level_of("agent", a) is None),
        "destinations": sorted(
            d for d in registry.destinations if registry.level_of("external", d) is None
        ),
    }
