"""The Threat Mapper over HTTP (`auditor` role): `GET /v1/posture/{report}`.

Each report is the same JSON the CLI prints with `--json` (README, "Posture reports"). It reads
the configured bundle and registry, checked to be the active one by digest (a bundle on disk
that differs from what the engine runs is 503 `not_ready`: the answer would describe a policy
that is not enforced), asks the running engine about candidates, and reads the audit log's
last `days`. Nothing is written to the audit log.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from maestro_gate.config import Settings
from maestro_gate.core.errors import NotReady
from maestro_gate.posture import reports, sources
from maestro_gate.posture.probe import Prober
from maestro_gate.posture.registry_view import Registry
from maestro_gate.posture.sources import PostureSources
from maestro_gate.posture.window import Window, bounds

router = APIRouter(prefix="/v1/posture", tags=["posture"])
MAX_EVALUATIONS = 20_000
MAX_SECONDS = 30.0
MAX_WINDOW_RECORDS = 200_000
"""The newest records of a window a route reads; older ones are counted in `cut_records`."""

Days = Annotated[float, Query(gt=0, le=366, description="The audit window, in days.")]
Evaluations = Annotated[
    int, Query(ge=1, le=MAX_EVALUATIONS, description="Bound on policy evaluations.")
]


def sources_of(gate: Any, settings: Settings) -> PostureSources:
    """The posture routes' inputs from a running gate (its engine and audit log) and the
    settings naming the bundle's files; `create_app`'s lifespan sets it on `app.state`."""
    return PostureSources(
        gate.engine, gate.audit, settings.bundle_dir, settings.registry_file, settings.catalog_dir
    )


def _sources(request: Request) -> PostureSources:
    found: PostureSources = request.app.state.posture
    return found


async def _registry(gate: PostureSources) -> Registry:
    """The registry of the bundle the engine runs; 503 if none is active or disk differs."""
    active = gate.engine.active_bundle()
    if active is None:
        raise NotReady("no bundle is active")
    bundle = await asyncio.to_thread(sources.load_bundle, gate.bundle_dir, gate.registry_file)
    if gate.engine.name != "opa" and bundle.digest != active.digest:
        raise NotReady(
            f"the bundle on disk ({bundle.revision}, {bundle.digest[:12]}) is not the active one"
            f" ({active.revision}, {active.digest[:12]}); reload it first"
        )
    return sources.registry_of(bundle)


async def _window(gate: PostureSources, days: float) -> Window:
    since, until = bounds(days)
    return await asyncio.to_thread(
        sources.read_window, gate.audit, since, until, MAX_WINDOW_RECORDS
    )


def _prober(gate: PostureSources, evaluations: int) -> Prober:
    return Prober(gate.engine, max_evaluations=evaluations, max_seconds=MAX_SECONDS)


@router.get("/topology", summary="Declared agent edges against observed traffic and the policy")
async def topology(
    request: Request, days: Days = 7.0, max_evaluations: Evaluations = MAX_EVALUATIONS
) -> dict[str, Any]:
    """Schema `maestro-gate/posture/topology/v1`, with the Graphviz DOT graph in `dot`."""
    gate = _sources(request)
    registry, window = await _registry(gate), await _window(gate, days)
    return await reports.topology_report(registry, window, _prober(gate, max_evaluations))


@router.get("/permissions", summary="Tool grants per agent: used, denied, unused, uncovered")
async def permissions(
    request: Request, days: Days = 7.0, max_evaluations: Evaluations = MAX_EVALUATIONS
) -> dict[str, Any]:
    """Schema `maestro-gate/posture/permissions/v1`."""
    gate = _sources(request)
    registry, window = await _registry(gate), await _window(gate, days)
    return await reports.permissions_report(registry, window, _prober(gate, max_evaluations))


@router.get("/classification", summary="Observed data movements, level against level")
async def classification(request: Request, days: Days = 7.0) -> dict[str, Any]:
    """Schema `maestro-gate/posture/classification/v1`."""
    gate = _sources(request)
    registry, window = await _registry(gate), await _window(gate, days)
    return reports.classification_report(registry, window)


@router.get("/orchestrator", summary="STRIDE table per orchestrating agent")
async def orchestrator(
    request: Request,
    days: Days = 7.0,
    agent: Annotated[
        list[str], Query(max_length=64, description="These agents (default: orchestrators).")
    ] = [],  # noqa: B006 (FastAPI copies a query list default)
) -> dict[str, Any]:
    """Schema `maestro-gate/posture/orchestrator/v1`; 404 for an agent the registry lacks."""
    gate = _sources(request)
    registry, window = await _registry(gate), await _window(gate, days)
    catalog, coverage = await asyncio.to_thread(
        sources.catalog_coverage, gate.bundle_dir, gate.catalog_dir
    )
    return reports.orchestrator_report(registry, catalog, coverage, window, agent)


@router.get("/coverage", summary="Catalog coverage with the window's denials and escalations")
async def coverage(request: Request, days: Days = 7.0) -> dict[str, Any]:
    """Schema `maestro-gate/posture/coverage/v1`."""
    gate = _sources(request)
    registry, window = await _registry(gate), await _window(gate, days)
    _, found = await asyncio.to_thread(sources.catalog_coverage, gate.bundle_dir, gate.catalog_dir)
    return reports.coverage_traffic_report(registry, found, window)


@router.get("/blast-radius", summary="What agents assumed compromised reach, per the policy")
async def blast_radius(
    request: Request,
    agent: Annotated[
        list[str], Query(max_length=64, description="Agent id or its last segment (repeat).")
    ] = [],  # noqa: B006 (FastAPI copies a query list default)
    agent_class: Annotated[
        str | None, Query(alias="class", max_length=256, description="A registry class.")
    ] = None,
    max_depth: Annotated[int | None, Query(ge=0, le=16, description="Delegation hops.")] = None,
    max_evaluations: Evaluations = MAX_EVALUATIONS,
) -> dict[str, Any]:
    """Schema `maestro-gate/posture/blast-radius/v1`; 404 when no registered agent is named."""
    gate = _sources(request)
    registry = await _registry(gate)
    compromised = reports.compromised_agents(registry, agent, agent_class)
    return await reports.blast_report(
        registry, compromised, _prober(gate, max_evaluations), max_depth
    )
