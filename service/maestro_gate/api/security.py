"""Caller authentication and role checks as FastAPI dependencies.

`authenticated` reads `Authorization: Bearer <JWT or API key>` or `X-API-Key` (both only when
they name the same caller); `require(*roles)` also demands one of the roles. Apply them where
routers are included (`api/app.py`), so that a router's module never has to remember them.
The decision routes, the hot path, check the same in their endpoint instead (`caller_holding`,
declared with `@checks_roles`): FastAPI's dependency solving costs about as much event-loop
time as the rest of the request.
A refused caller is counted in `maestro_refused_callers{code}`; an agent asking for a subject it
is not bound to is refused by the decision service (`core/decision/deciding.py`), which also
writes an `impersonation_attempt` event to the audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from maestro_gate.api.services import services_of
from maestro_gate.core.decision.callers import Caller
from maestro_gate.core.errors import Forbidden, Unauthenticated
from maestro_gate.runtime import Services

PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
"""The OpenAPI security requirement of an authenticated route (what the dependencies document)."""
ROLE_CHECKED: dict[Callable[..., Any], frozenset[str]] = {}
"""Endpoints that authenticate and check roles themselves, with the roles they admit."""

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
    caller = authenticate(services_of(request), request, bearer, api_key)
    request.state.caller = caller
    return caller


def require(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers with at least one of `roles`; 403 `forbidden` otherwise."""
    wanted = frozenset(roles)

    async def with_role(
        request: Request, caller: Annotated[Caller, Depends(authenticated)]
    ) -> Caller:
        return holding(services_of(request), caller, wanted)

    return with_role


def authenticate(
    services: Services,
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
        authenticator = services.authenticator
        if authenticator.required and bearer is None and sent is not None:
            raise Unauthenticated("`Authorization` must be `Bearer <token or key>`")
        return authenticator.authenticate(bearer.credentials if bearer else None, api_key)
    except Unauthenticated:
        services.refused(Unauthenticated.code)
        raise


def holding(services: Services, caller: Caller, wanted: frozenset[str]) -> Caller:
    """`caller` when it has one of the `wanted` roles; 403 `forbidden`, counted, otherwise."""
    if caller.roles.isdisjoint(wanted):
        services.refused(Forbidden.code)
        raise Forbidden(
            f"this endpoint needs the role {' or '.join(sorted(wanted))}; "
            f"{caller.principal} has {', '.join(sorted(caller.roles)) or 'no role'}"
        )
    return caller


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def checks_roles(*roles: str) -> Callable[[Endpoint], Endpoint]:
    """Declare that an endpoint admits only callers with one of `roles`, checked by itself
    with `caller_holding` (api/contract.py documents its 401 and 403 from this)."""

    def declare(endpoint: Endpoint) -> Endpoint:
        ROLE_CHECKED[endpoint] = frozenset(roles)
        return endpoint

    return declare


async def caller_holding(request: Request, wanted: frozenset[str]) -> Caller:
    """What `require(*wanted)` admits, checked inside an endpoint: the same header readers
    (`HTTPBearer`, `APIKeyHeader`), checks and refusal counts, without dependency solving."""
    services = services_of(request)
    bearer = await _bearer(request)
    api_key = await _api_key(request)
    caller = holding(services, authenticate(services, request, bearer, api_key), wanted)
    request.state.caller = caller
    return caller


def caller_of(request: Request) -> Caller:
    """The caller a dependency authenticated for this request."""
    caller: Caller = request.state.caller
    return caller


def split(router: APIRouter, public: Iterable[str] = PUBLIC_PATHS) -> tuple[APIRouter, APIRouter]:
    """The router's routes as (public, protected) routers, by path."""
    paths = frozenset(public)
    open_, closed = APIRouter(), APIRouter()
    for route in router.routes:
        target = open_ if isinstance(route, APIRoute) and route.path in paths else closed
        target.routes.append(route)
    return open_, closed
