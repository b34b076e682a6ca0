"""The single translation of errors to HTTP: `{code, message, errors?}`, as OPA shapes them."""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from maestro_gate.core import errors

STATUS: dict[type[errors.GateError], int] = {
    errors.RequestTooLarge: 413,
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.CallerOverloaded: 429,
    errors.BundleError: 422,
    errors.EngineError: 503,  # a reload that cannot reach or authenticate to OPA
    errors.AuditUnavailable: 503,
    errors.NotReady: 503,
}


CHALLENGE = 'Bearer realm="maestro-gate", charset="UTF-8"'
"""The `WWW-Authenticate` challenge of every 401 (RFC 6750; `X-API-Key` is also accepted)."""


class UnprocessableRequest(errors.InvalidRequest):
    """The body is JSON but does not match the request schema."""

    code = "invalid_request"


class DuplicateKey(errors.InvalidRequest):
    """An object in the body names the same key twice (parsers disagree on which one wins)."""

    code = "duplicate_key"


class UnsupportedMediaType(errors.InvalidRequest):
    """The body is not declared as JSON in UTF-8."""

    code = "unsupported_media_type"


STATUS[UnprocessableRequest] = 422
STATUS[UnsupportedMediaType] = 415


def status_of(exc: errors.GateError) -> int:
    """The HTTP status of a gate error: the nearest class in STATUS, else 500."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(
    code: str, message: str, details: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The error body shape every endpoint uses."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["errors"] = details
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def validation_details(raw: list[Any]) -> list[dict[str, Any]]:
    """pydantic errors as `{code, message, location}` entries, with no echo of the input."""
    return [
        {
            "code": str(e.get("type", "invalid")),
            "message": str(e.get("msg", "")),
            "location": "/" + "/".join(str(p) for p in e.get("loc", ())),
        }
        for e in raw[:50]
    ]


def gate_error_response(exc: errors.GateError) -> JSONResponse:
    """The answer to a gate error: its status and body, the challenge on 401; 5xx are logged."""
    status = status_of(exc)
    if status >= 500:
        structlog.get_logger("maestro_gate.api").error(
            "request_failed", code=exc.code, message=exc.message
        )
    headers = {"WWW-Authenticate": CHALLENGE} if status == 401 else None
    if isinstance(exc, errors.CallerOverloaded) and exc.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return JSONResponse(
        error_body(exc.code, exc.message, exc.errors), status_code=status, headers=headers
    )


def unexpected_response(exc: Exception) -> JSONResponse:
    """500 `internal_error` with no detail; the exception, being handled, is logged in full."""
    structlog.get_logger("maestro_gate.api").exception("unexpected_error", error=type(exc).__name__)
    return JSONResponse(error_body("internal_error", "internal error"), status_code=500)


class Unanswered(Response):
    """No answer at all: for a client that went away while its request was read."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this request's path (Starlette's 405 names one route's)."""
    path = _route_path(request.scope)
    methods: set[str] = set()
    for route in routing.iter_route_contexts(request.app.routes):
        if route.path and route.methods and compile_path(route.path)[0].match(path):
            methods |= route.methods
    return sorted(methods)


def _route_path(scope: Scope) -> str:
    """The path the routes match: the request path below the app's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same body shape."""

    @app.exception_handler(errors.GateError)
    async def gate_error(_: Request, exc: errors.GateError) -> JSONResponse:
        return gate_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        body = error_body("invalid_request", "request does not match the schema", details)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "resource_not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "invalid_parameter")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, exc: ClientDisconnect) -> Response:
        return Unanswered()

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return unexpected_response(exc)
