"""`create_app(settings)`: the FastAPI application; its lifespan owns every client and pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from maestro_gate import __version__, console
from maestro_gate.api import (
    admin,
    admin_state,
    approvals,
    audit,
    authzen,
    contract,
    decide,
    http_errors,
    operations,
    posture,
    security,
)
from maestro_gate.config import Settings
from maestro_gate.core.decision.callers import AUDITOR, POLICY_ADMIN
from maestro_gate.wiring import Gate, build


def create_app(settings: Settings, gate: Gate | None = None) -> FastAPI:
    """The service for `settings`; pass `gate` to run on parts built elsewhere."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = gate or build(settings)
        await running.start()
        app.state.posture = posture.sources_of(running, settings)
        app.state.gate = running  # the lifespan's own, and tests'; routes use services_of
        app.state.services = running.services
        try:
            yield
        finally:
            await running.close()

    app = FastAPI(
        title="MAESTRO Gate",
        version=__version__,
        summary="Policy decision point for multi-agent AI systems (MAESTRO layers).",
        lifespan=lifespan,
    )
    http_errors.install(app)
    decide.add_route(app)  # first, on the app itself: its endpoint checks its caller
    authzen.add_routes(app)  # AuthZEN 1.0 beside /v1, decided by the same service
    # Authentication and roles are applied here, per router, so no router module can forget them.
    admins = [Depends(security.require(POLICY_ADMIN))]
    public, protected = security.split(operations.router)
    app.include_router(public)
    app.include_router(protected, dependencies=[Depends(security.authenticated)])
    app.include_router(admin.router, dependencies=admins)
    app.include_router(admin_state.router, dependencies=admins)
    app.include_router(approvals.router, dependencies=[Depends(security.authenticated)])
    app.include_router(audit.router, dependencies=[Depends(security.require(AUDITOR))])
    app.include_router(posture.router, dependencies=[Depends(security.require(AUDITOR))])
    console.install(app, settings)  # /console: its own sessions and role checks (console/access.py)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                {**decide.request_schemas(), **authzen.request_schemas()}
            )
            contract.document(schema, app.routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
