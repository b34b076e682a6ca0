"""The Threat Mapper page: the posture reports (`/v1/posture/*`) drawn for an auditor.

The topology graph (Graphviz's SVG of the report's DOT, inline: the page's CSP runs no inline
script), the blast radius of a chosen agent and the unused grants, each from the API's own
route function and the CLI's own table, with fewer policy evaluations than the API allows so a
page view stays quick; what a bound cut is said in each table.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from maestro_gate.api import posture as posture_api
from maestro_gate.console import render
from maestro_gate.console.access import reviewer
from maestro_gate.core.errors import GateError
from maestro_gate.posture import tables
from maestro_gate.posture.sources import render_svg

router = APIRouter(prefix="/console", include_in_schema=False)
EVALUATIONS = 2000
DAYS = ("1", "7", "30")


@router.get("/posture")
async def posture(request: Request) -> Response:
    """Topology, unused grants, and the blast radius of `?agent=` over the last `?days=`."""
    me = reviewer(request, "posture")
    days = request.query_params.get("days", "7")
    days = days if days in DAYS else "7"
    agent = (request.query_params.get("agent") or "").strip()[:512]
    view: dict[str, Any] = {"days": days, "agent": agent, "problem": None}
    try:
        topology = await posture_api.topology(request, float(days), EVALUATIONS)
        grants = await posture_api.permissions(request, float(days), EVALUATIONS)
        view["topology"] = tables.topology(topology)
        view["svg"] = await asyncio.to_thread(_svg, str(topology.get("dot", "")))
        view["grants"] = tables.permissions(grants)
        view["agents"] = sorted(str(a.get("agent")) for a in grants.get("agents", []))
        if agent:
            blast = await posture_api.blast_radius(request, [agent], None, None, EVALUATIONS)
            view["blast"] = tables.blast_radius(blast)
    except GateError as exc:
        view["problem"] = f"{exc.code}: {exc.message}"
    return render.page("posture.html", me=me.view(), page="posture", **view)


def _svg(dot: str) -> Markup | None:
    """The graph as inline SVG markup, or None without Graphviz (Graphviz escapes labels)."""
    try:
        drawn = render_svg(dot) if dot else None
    except (OSError, subprocess.SubprocessError):
        return None
    if drawn is None:
        return None
    text = drawn.decode()
    return Markup(text[text.find("<svg") :])  # noqa: S704 (Graphviz output; CSP runs no inline script)
