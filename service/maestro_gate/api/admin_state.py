"""Operator controls: enforcement mode and emergency stop (`/v1/admin/mode`, `…/emergency-stop`).

Every change is written to the audit trail first (`mode_changed`, `emergency_stop_added`,
`emergency_stop_lifted`), then persisted in the approvals database (so it survives a restart
and reaches other replicas), then applied to the decision point at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from maestro_gate.api.security import caller_of
from maestro_gate.approvals.sync import ControlsSync
from maestro_gate.core.catalog import LayerId
from maestro_gate.core.controls import Stop, StopKind
from maestro_gate.core.decisions import Mode
from maestro_gate.core.errors import NotFound, NotReady
from maestro_gate.wiring import Gate

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
    gate: Gate = request.app.state.gate
    return gate.point.controls.mode_view()


@router.put("/mode", summary="Set the enforcement mode (global or per layer)")
async def put_mode(request: Request, body: ModeBody) -> dict[str, Any]:
    """Audit, persist and apply a new mode; an unknown layer is refused by the schema (422)."""
    gate: Gate = request.app.state.gate
    layers: frozenset[str] = frozenset(body.shadow_layers)
    before = gate.point.controls.mode_view()
    after = {"mode": body.mode, "shadow_layers": sorted(layers)}
    await gate.point.event(
        "mode_changed", None, {"from": before, "to": after, "by": caller_of(request).principal}
    )
    sync = _sync(gate)
    await sync.store.save_mode(body.mode, layers)
    return (await sync.tick()).mode_view()


@router.get("/emergency-stop", summary="Agents and agent classes under emergency stop")
async def get_stops(request: Request) -> dict[str, Any]:
    """`{agents: [...], classes: [...]}` with who stopped each, when and why."""
    gate: Gate = request.app.state.gate
    return _stops_view(gate)


@router.post("/emergency-stop", status_code=201, summary="Stop an agent or an agent class now")
async def add_stop(request: Request, body: StopBody) -> dict[str, Any]:
    """Audit, persist and apply a stop; every later decision for it is a deny."""
    gate: Gate = request.app.state.gate
    stop = Stop(
        kind=body.kind,
        id=body.id,
        by=caller_of(request).principal,
        at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        reason=body.reason,
    )
    subject = stop.id if stop.kind == "agent" else None
    await gate.point.event("emergency_stop_added", subject, _stop_view(stop))
    sync = _sync(gate)
    await sync.store.add_stop(stop)
    await sync.tick()
    return _stops_view(gate)


@router.delete("/emergency-stop", summary="Lift an emergency stop")
async def lift_stop(request: Request, kind: StopKind, id: str) -> dict[str, Any]:
    """Audit, persist and apply the lifting of a stop; 404 when there is none."""
    gate: Gate = request.app.state.gate
    sync = _sync(gate)
    current = await sync.tick()
    if not any(s.kind == kind and s.id == id for s in current.stops):
        raise NotFound(f"no emergency stop for {kind} {id}")
    detail = {"kind": kind, "id": id, "by": caller_of(request).principal}
    await gate.point.event("emergency_stop_lifted", id if kind == "agent" else None, detail)
    await sync.store.remove_stop(kind, id)
    await sync.tick()
    return _stops_view(gate)


def _sync(gate: Gate) -> ControlsSync:
    if gate.controls is None:
        raise NotReady("operator controls are not configured")
    return gate.controls


def _stop_view(stop: Stop) -> dict[str, Any]:
    return {"kind": stop.kind, "id": stop.id, "by": stop.by, "at": stop.at, "reason": stop.reason}


def _stops_view(gate: Gate) -> dict[str, Any]:
    stops = gate.point.controls.stops
    return {
        "agents": [_stop_view(s) for s in stops if s.kind == "agent"],
        "classes": [_stop_view(s) for s in stops if s.kind == "class"],
    }
