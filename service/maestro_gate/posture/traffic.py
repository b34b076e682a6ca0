"""Step 7, catalog coverage joined with live traffic: what the covering rules did in the window.

For each layer and each catalog threat placed there, the decisions in the window denied or
escalated by a reason of that layer citing that threat (each decision counted once). A threat
with rules that fired is `fired`; covered by rules that never fired, `covered_never_fired`;
with no rule at that layer, `no_rule`. Each threat also carries its `state` over the whole
bundle (`catalog coverage`'s: enforced, credited, out_of_reach or open), so a `no_rule` row
answered by a gate mechanism or out of a decision point's reach is told apart from a gap.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from maestro_gate.core.catalog.coverage import CoverageReport
from maestro_gate.posture.window import Window

SCHEMA = "maestro-gate/posture/coverage/v1"


def counts(window: Window) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """Per (layer, threat): decisions denied, and decisions escalated, for it."""
    denied: Counter[tuple[str, str]] = Counter()
    escalated: Counter[tuple[str, str]] = Counter()
    for record in window.records:
        decision = record.get("decision")
        if decision not in ("deny", "require_hitl"):
            continue
        reasons = (record.get("result") or {}).get("reasons") or []
        cited = {
            (str(reason.get("layer")), str(threat))
            for reason in reasons
            if isinstance(reason, dict)
            for threat in reason.get("threats") or []
        }
        (denied if decision == "deny" else escalated).update(cited)
    return denied, escalated


def report(coverage: CoverageReport, window: Window) -> dict[str, Any]:
    """The coverage-with-traffic report (schema `SCHEMA`)."""
    denied, escalated = counts(window)
    states = {item.id: item.state for item in coverage.threat_states}
    layers: list[dict[str, Any]] = []
    for layer in coverage.layers:
        threats: list[dict[str, Any]] = []
        for item in layer.threats:
            key = (layer.id, item.id)
            fired = denied[key] + escalated[key]
            status = "no_rule" if not item.covered else "fired" if fired else "covered_never_fired"
            threats.append(
                {
                    "id": item.id,
                    "name": item.name,
                    "rules": list(item.rules),
                    "tests": len(item.tests),
                    "denials": denied[key],
                    "escalations": escalated[key],
                    "status": status,
                    "state": states.get(item.id, "enforced" if item.covered else "open"),
                }
            )
        layers.append(
            {
                "id": layer.id,
                "code": layer.code,
                "name": layer.name,
                "denials": sum(t["denials"] for t in threats),
                "escalations": sum(t["escalations"] for t in threats),
                "threats": threats,
            }
        )
    statuses = Counter(t["status"] for layer in layers for t in layer["threats"])
    return {
        "layers": layers,
        "totals": {s: statuses[s] for s in ("fired", "covered_never_fired", "no_rule")},
    }
