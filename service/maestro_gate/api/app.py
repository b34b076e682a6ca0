"""`create_app(settings)`: the FastAPI application; its lifespan owns every client and pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from maestro_gate import __version__
from maestro_gate.api import (
    admin,
    admin_state,
    approvals,
    audit,
    contract,
    decide,
    errors,
    fast,
    operations,
    posture,
    security,
)
from maestro_gate.config import Settings
from maestro_gate.core.callers import AGENT, AUDITOR, POLICY_ADMIN
from maestro_gate.wiring import Gate, build


class GateApp(FastAPI):
    """FastAPI, with `POST /v1/decide` answered by the ASGI fast path (`api/fast.py`).

    The decide route stays registered: it documents the endpoint and serves it whenever the fast
    path stands aside, which is whenever FastAPI would do something the fast path does not: a
    root path, middleware, a body size limit or dependency overrides configured on the app, or
    FastAPI's own OpenTelemetry instrumentation on (decisions keep their spans and metrics).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if fast.takes(scope) and self._plain():
            await fast.decide(self.state, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _plain(self) -> bool:
        # `_native_telemetry` is FastAPI's own (0.165); if a release drops it, stand aside.
        telemetry = getattr(self, "_native_telemetry", None)
        return not (
            self.root_path
            or self.user_middleware
            or self.max_body_size is not None
            or self.dependency_overrides
            or telemetry is None
            or telemetry.enabled()
        )


def create_app(settings: Settings, gate: Gate | None = None) -> FastAPI:
    """The service for `settings`; pass `gate` to run on parts built elsewhere."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = gate or build(settings)
        await running.start()
        app.state.posture = posture.sources_of(running, settings)
        app.state.gate = running
        try:
            yield
        finally:
            await running.close()

    app = GateApp(
        title="MAESTRO Gate",
        version=__version__,
        summary="Policy decision point for multi-agent AI systems (MAESTRO layers).",
        lifespan=lifespan,
    )
    errors.install(app)
    # Authentication and roles are applied here, per router, so no router module can forget them.
    admins = [Depends(security.require(POLICY_ADMIN))]
    app.include_router(decide.router, dependencies=[Depends(security.require(AGENT))])
    public, protected = security.split(operations.router)
    app.include_router(public)
    app.include_router(protected, dependencies=[Depends(security.authenticated)])
    app.include_router(admin.router, dependencies=admins)
    app.include_router(admin_state.router, dependencies=admins)
    app.include_router(approvals.router, dependencies=[Depends(security.authenticated)])
    app.include_router(audit.router, dependencies=[Depends(security.require(AUDITOR))])
    app.include_router(posture.router, dependencies=[Depends(security.require(AUDITOR))])

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                decide.request_schemas()
            )
            contract.document(schema, app.routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
