"""Caller authentication and role checks as FastAPI dependencies.

`authenticated` reads `Authorization: Bearer <JWT or API key>` or `X-API-Key` (both only when
they name the same caller); `require(*roles)` also demands one of the roles. Apply them where
routers are included (`api/app.py`), so that a router's module never has to remember them;
`caller_with` is the same pair of checks for the `/v1/decide` fast path (`api/fast.py`), which
has no dependency solving. A refused caller is
counted in `maestro_refused_callers{code}`; an agent asking for a subject it is not bound to is
also written to the audit trail as an `impersonation_attempt` event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from maestro_gate.core.callers import Caller
from maestro_gate.core.errors import Forbidden, GateError, SubjectNotBound, Unauthenticated
from maestro_gate.core.requests import AgentAction, DataMovement, Delegation
from maestro_gate.wiring import Gate

PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A JWT (EdDSA, ES256, RS256) from the configured issuer, or an API key.",
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key."
)


async def authenticated(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Caller:
    """The authenticated caller; 401 `unauthorized` when no valid credential is presented."""
    caller = authenticate(request.app.state.gate, request, bearer, api_key)
    request.state.caller = caller
    return caller


def require(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers with at least one of `roles`; 403 `forbidden` otherwise."""
    wanted = frozenset(roles)

    async def with_role(
        request: Request, caller: Annotated[Caller, Depends(authenticated)]
    ) -> Caller:
        return holding(request.app.state.gate, caller, wanted)

    return with_role


def authenticate(
    gate: Gate,
    connection: HTTPConnection,
    bearer: HTTPAuthorizationCredentials | None,
    api_key: str | None,
) -> Caller:
    """The caller the credentials name; 401 `unauthorized`, counted, when none is valid.

    An `Authorization` header that is not a bearer credential is an invalid credential, not an
    absent one: it is refused even beside a valid `X-API-Key`.
    """
    try:
        sent = connection.headers.get("authorization")
        if gate.auth.required and bearer is None and sent is not None:
            raise Unauthenticated("`Authorization` must be `Bearer <token or key>`")
        return gate.auth.authenticate(bearer.credentials if bearer else None, api_key)
    except Unauthenticated:
        gate.metrics.refused_callers.labels("unauthorized").inc()
        raise


def holding(gate: Gate, caller: Caller, wanted: frozenset[str]) -> Caller:
    """`caller` when it has one of the `wanted` roles; 403 `forbidden`, counted, otherwise."""
    if caller.roles.isdisjoint(wanted):
        gate.metrics.refused_callers.labels("forbidden").inc()
        raise Forbidden(
            f"this endpoint needs the role {' or '.join(sorted(wanted))}; "
            f"{caller.principal} has {', '.join(sorted(caller.roles)) or 'no role'}"
        )
    return caller


async def caller_with(gate: Gate, connection: HTTPConnection, wanted: frozenset[str]) -> Caller:
    """What `require(*wanted)` admits, for code outside FastAPI's dependency solving.

    The same header readers (`HTTPBearer`, `APIKeyHeader`), checks and refusal counts.
    """
    bearer = await _bearer(connection)
    api_key = await _api_key(connection)
    return holding(gate, authenticate(gate, connection, bearer, api_key), wanted)


def caller_of(request: Request) -> Caller:
    """The caller a dependency authenticated for this request."""
    caller: Caller = request.state.caller
    return caller


async def ensure_bound(
    gate: Gate, caller: Caller, request: AgentAction | DataMovement | Delegation
) -> None:
    """Refuse (403 `subject_not_bound`, audited) an agent asking for a subject not its own."""
    subject = request.subject.id
    if caller.may_act_for(subject):
        return
    gate.metrics.refused_callers.labels(SubjectNotBound.code).inc()
    detail = {
        "principal": caller.principal,
        "method": caller.method,
        "bound_subjects": sorted(caller.subjects),
        "claimed_subject": subject,
        "kind": request.kind,
        "request_id": request.request_id,
        "trace_id": request.context.trace_id,
    }
    try:
        await gate.point.event("impersonation_attempt", subject, detail)
    except GateError as exc:
        structlog.get_logger("maestro_gate.auth").error(
            "impersonation_not_audited", error=exc.message, **detail
        )
    raise SubjectNotBound(f"{caller.principal} is not bound to subject {subject}")


def split(router: APIRouter, public: Iterable[str] = PUBLIC_PATHS) -> tuple[APIRouter, APIRouter]:
    """The router's routes as (public, protected) routers, by path."""
    paths = frozenset(public)
    open_, closed = APIRouter(), APIRouter()
    for route in router.routes:
        target = open_ if isinstance(route, APIRoute) and route.path in paths else closed
        target.routes.append(route)
    return open_, closed
