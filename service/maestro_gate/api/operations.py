"""Liveness, readiness, status and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from maestro_gate.api.services import services_of

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
    (core/decision/health.py).
    """
    ok, body = await services_of(request).readiness.ready()
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/v1/status", summary="Bundle, engine and audit status")
async def status(request: Request) -> dict[str, Any]:
    """The active bundle, engine, audit size, mode and the last reload error."""
    return await services_of(request).readiness.status()


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The `maestro_*` metrics in Prometheus text format."""
    registry = services_of(request).registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
