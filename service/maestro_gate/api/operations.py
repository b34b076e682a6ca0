"""Liveness, readiness, status and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from maestro_gate.wiring import Gate

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process serves requests."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: a bundle is active and the audit store takes a write")
async def ready(request: Request) -> JSONResponse:
    """200 when decisions can be made and recorded now, else 503 with the failing checks.

    `audit_writable` is a write probe of the store itself (at most one a second, see
    audit/store.py), so a store that recovers turns the gate ready again without any traffic.
    `engine_free` is false while evaluations past their deadline hold every engine worker, or
    while a probe evaluation (at most one a second) does not answer within the deadline
    (core/health.py).
    """
    gate: Gate = request.app.state.gate
    # Ask the engine first: an OPA engine learns its active revision when OPA becomes healthy.
    engine_reachable = await gate.engine.ready()
    busy = await gate.engine_health.check() if gate.engine_health else None
    checks = {
        "bundle_active": gate.engine.active_bundle() is not None,
        "engine_reachable": engine_reachable,
        "engine_free": busy is None,
        "audit_writable": await gate.audit.writable(),
    }
    ok = all(checks.values())
    body: dict[str, Any] = {"status": "ready" if ok else "not_ready", "checks": checks}
    if not ok:
        body = {"code": "not_ready", "message": "the gate cannot decide yet", **body}
        if busy is not None:
            body["engine_problem"] = busy
        if not checks["audit_writable"] and gate.audit.problem is not None:
            body["audit_problem"] = gate.audit.problem
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/v1/status", summary="Bundle, engine and audit status")
async def status(request: Request) -> dict[str, Any]:
    """The active bundle, engine, audit size, mode and the last reload error."""
    gate: Gate = request.app.state.gate
    bundle = gate.engine.active_bundle()
    return {
        "engine": gate.engine.name,
        "engine_reachable": await gate.engine.ready(),
        "mode": gate.point.mode,
        "bundle": (
            {
                "revision": bundle.revision,
                "digest": bundle.digest,
                "activated_at": bundle.activated_at,
            }
            if bundle
            else None
        ),
        "last_reload_error": gate.last_reload_error,
        "audit": {
            "records": await gate.audit.size(),
            "writable": await gate.audit.writable(),
            # No signed checkpoints exist yet; the field is reserved for the latest one.
            "last_checkpoint": None,
        },
    }


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The `maestro_*` metrics in Prometheus text format."""
    gate: Gate = request.app.state.gate
    return Response(generate_latest(gate.metrics.registry), media_type=CONTENT_TYPE_LATEST)
