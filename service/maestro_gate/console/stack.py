"""The MAESTRO stack page: per layer, its threats, the rules and tests, the gaps, and traffic.

The coverage is `catalog coverage`'s own report (`maestro_gate.core.catalog.coverage`) over the
policy directory, so the figures are the CLI's; the denials and escalations per layer are counted in
the audit log's facets over the chosen window. Shadow layers and emergency stops in force are read
from the controls. The Threat Mapper's posture views have their place at the bottom.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from maestro_gate.console import render
from maestro_gate.console.access import reviewer
from maestro_gate.console.state import catalog_of, config_of, services
from maestro_gate.core.catalog.coverage import CoverageReport, coverage_report

router = APIRouter(prefix="/console", include_in_schema=False)
WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}


@router.get("/stack")
async def stack(request: Request) -> Response:
    """The seven layers and the cross-layer, as a stack, for a window (`?window=24h`)."""
    me = reviewer(request, "stack")
    window = request.query_params.get("window", "24h")
    if window not in WINDOWS:
        window = "24h"
    catalog = catalog_of(request)
    config = config_of(request)
    if catalog is None or config.policy_dir is None:
        return render.page(
            "stack.html",
            me=me.view(),
            page="stack",
            layers=[],
            report=None,
            window=window,
            windows=list(WINDOWS),
            problem="No MAESTRO catalog or policy directory is configured.",
        )
    report = await asyncio.to_thread(coverage_report, config.policy_dir, catalog, config.answers())
    span = WINDOWS[window]
    since = "" if span is None else (datetime.now(UTC) - span).isoformat()
    counts = await services(request).audit.layer_tally([x.id for x in catalog.layers], since)
    in_force = services(request).controls.current()
    layers = [
        _layer(entry, report, counts.get(entry.id, {}), in_force.shadow_layers, in_force.mode)
        for entry in reversed(report.layers)
    ]
    return render.page(
        "stack.html",
        me=me.view(),
        page="stack",
        layers=layers,
        report=report,
        window=window,
        windows=list(WINDOWS),
        stops=in_force.stops,
        mode=in_force.mode,
        problem=None,
    )


def _layer(
    layer: Any, report: CoverageReport, counts: dict[str, int], shadow: frozenset[str], mode: str
) -> dict[str, Any]:
    rules = [r for r in report.rules if r.layer == layer.id]
    covered = sum(1 for t in layer.threats if t.covered)
    answered = {s.id: s for s in report.threat_states if s.state in ("credited", "out_of_reach")}
    return {
        "id": layer.id,
        "code": layer.code,
        "name": layer.name,
        "threats": layer.threats,
        "rules": rules,
        "tests": sorted({t for r in rules for t in r.tests}),
        "answered": answered,
        "uncovered": [t for t in layer.uncovered_threats if t not in answered],
        "covered": covered,
        "denials": counts.get("deny", 0),
        "escalations": counts.get("require_hitl", 0),
        "shadow": mode == "shadow" or layer.id in shadow,
    }
