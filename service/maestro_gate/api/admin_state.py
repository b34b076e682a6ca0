"""Operator controls: enforcement mode and emergency stop (`/v1/admin/mode`, `…/emergency-stop`).

Every change is written to the audit trail first (`mode_changed`, `emergency_stop_added`,
`emergency_stop_lifted`), then persisted in the approvals database (so it survives a restart
and reaches other replicas), then applied to the decision point at once
(`approvals/operator_controls.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from maestro_gate.api.security import caller_of
from maestro_gate.api.services import services_of
from maestro_gate.approvals.operator_controls import stop_view
from maestro_gate.core.catalog.model import LayerId
from maestro_gate.core.decision.controls import Controls, Stop, StopKind
from maestro_gate.core.decision.decisions import Mode

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ModeBody(BaseModel):
    """The enforcement mode: global, and the layers whose reasons cannot block."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode
    shadow_layers: list[LayerId] = Field(
        default_factory=list, examples=[["l4_deployment_infrastructure"]]
    )


class StopBody(BaseModel):
    """An agent id or an agent class (the registry's `class`) to stop at once."""

    model_config = ConfigDict(extra="forbid")
    kind: StopKind
    id: str = Field(min_length=1, max_length=512)
    reason: str | None = Field(None, max_length=2000)


@router.get("/mode", summary="The enforcement mode in force")
async def get_mode(request: Request) -> dict[str, Any]:
    """`{mode, shadow_layers}`."""
    return services_of(request).controls.current().mode_view()


@router.put("/mode", summary="Set the enforcement mode (global or per layer)")
async def put_mode(request: Request, body: ModeBody) -> dict[str, Any]:
    """Audit, persist and apply a new mode; an unknown layer is refused by the schema (422)."""
    controls = services_of(request).controls
    layers: frozenset[str] = frozenset(body.shadow_layers)
    applied = await controls.set_mode(body.mode, layers, caller_of(request).principal)
    return applied.mode_view()


@router.get("/emergency-stop", summary="Agents and agent classes under emergency stop")
async def get_stops(request: Request) -> dict[str, Any]:
    """`{agents: [...], classes: [...]}` with who stopped each, when and why."""
    return _stops_view(services_of(request).controls.current())


@router.post("/emergency-stop", status_code=201, summary="Stop an agent or an agent class now")
async def add_stop(request: Request, body: StopBody) -> dict[str, Any]:
    """Audit, persist and apply a stop; every later decision for it is a deny."""
    controls = services_of(request).controls
    stop = Stop(
        kind=body.kind,
        id=body.id,
        by=caller_of(request).principal,
        at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        reason=body.reason,
    )
    await controls.add_stop(stop)
    return _stops_view(controls.current())


@router.delete("/emergency-stop", summary="Lift an emergency stop")
async def lift_stop(request: Request, kind: StopKind, id: str) -> dict[str, Any]:
    """Audit, persist and apply the lifting of a stop; 404 when there is none."""
    controls = services_of(request).controls
    await controls.lift_stop(kind, id, caller_of(request).principal)
    return _stops_view(controls.current())


def _stops_view(controls: Controls) -> dict[str, Any]:
    stops = controls.stops
    return {
        "agents": [stop_view(s) for s in stops if s.kind == "agent"],
        "classes": [stop_view(s) for s in stops if s.kind == "class"],
    }
