"""The error half of the OpenAPI document, derived from one table: what each route can raise.

`RAISES` names, per route, the gate errors its own code raises; the status of each comes from
`errors.STATUS`, and every error status is documented with the one error body (`Error`). What
the route's dependencies add is derived, not listed: 401 for any authenticated route, 403 for
one that needs a role, 422 for one with parameters or a body FastAPI validates, 400 for one
with a body (a body that is not JSON).
`tests/test_api_contract.py` checks the table covers every route and runs schemathesis against
the served document, so a status the service answers but does not document fails `make test`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import routing
from fastapi.dependencies.models import Dependant

from maestro_gate.api import http_errors as http
from maestro_gate.api import security
from maestro_gate.core import errors
from maestro_gate.core.decision.authzen import AuthzenInvalid
from maestro_gate.core.decision.retries import RequestIdReused

ERROR_REF = {"$ref": "#/components/schemas/Error"}

_APPROVAL_STORE = (errors.NotReady, errors.AuditUnavailable)  # none configured, or it failed
_CONTROLS = (errors.NotReady, errors.AuditUnavailable)  # not configured, or the event failed

RAISES: dict[tuple[str, str], tuple[type[errors.GateError], ...]] = {
    ("GET", "/health"): (),
    ("GET", "/ready"): (errors.NotReady,),
    ("GET", "/v1/status"): (),
    (
        "POST",
        "/v1/decide",
    ): (
        errors.InvalidRequest,
        http.DuplicateKey,
        errors.RequestTooDeep,
        errors.RequestTooComplex,
        errors.RequestTooLarge,
        http.UnsupportedMediaType,
        http.UnprocessableRequest,
        errors.SubjectNotBound,
        RequestIdReused,
        errors.CallerOverloaded,
        errors.AuditUnavailable,
    ),
    ("POST", "/access/v1/evaluation"): (
        errors.InvalidRequest,
        AuthzenInvalid,
        http.DuplicateKey,
        errors.RequestTooDeep,
        errors.RequestTooComplex,
        errors.RequestTooLarge,
        http.UnsupportedMediaType,
        errors.SubjectNotBound,
        RequestIdReused,
        errors.CallerOverloaded,
        errors.AuditUnavailable,
    ),
    ("POST", "/access/v1/evaluations"): (
        errors.InvalidRequest,
        AuthzenInvalid,
        http.DuplicateKey,
        errors.RequestTooDeep,
        errors.RequestTooLarge,
        http.UnsupportedMediaType,
        errors.CallerOverloaded,
    ),
    ("GET", "/.well-known/authzen-configuration"): (),
    ("POST", "/v1/admin/bundle/reload"): (
        errors.BundleError,
        errors.EngineError,
        errors.AuditUnavailable,
    ),
    ("GET", "/v1/admin/mode"): (),
    ("PUT", "/v1/admin/mode"): _CONTROLS,
    ("GET", "/v1/admin/emergency-stop"): (),
    ("POST", "/v1/admin/emergency-stop"): _CONTROLS,
    ("DELETE", "/v1/admin/emergency-stop"): (errors.NotFound, *_CONTROLS),
    ("GET", "/v1/approvals"): _APPROVAL_STORE,
    ("GET", "/v1/approvals/{approval_id}"): (errors.NotFound, *_APPROVAL_STORE),
    ("POST", "/v1/approvals/{approval_id}/approve"): (
        errors.SelfApproval,
        errors.NotFound,
        errors.AlreadyVoted,
        errors.ApprovalClosed,
        *_APPROVAL_STORE,
    ),
    ("POST", "/v1/approvals/{approval_id}/reject"): (
        errors.SelfApproval,
        errors.NotFound,
        errors.AlreadyVoted,
        errors.ApprovalClosed,
        *_APPROVAL_STORE,
    ),
    ("GET", "/v1/audit/checkpoint"): (errors.NotReady,),
    ("GET", "/v1/audit/entries"): (),
    ("GET", "/v1/audit/entries/{decision_id}"): (errors.NotFound,),
    ("GET", "/v1/audit/proof/inclusion"): (errors.NotFound,),
    ("GET", "/v1/audit/proof/consistency"): (errors.NotFound,),
    ("GET", "/v1/posture/topology"): (errors.NotReady,),
    ("GET", "/v1/posture/permissions"): (errors.NotReady,),
    ("GET", "/v1/posture/classification"): (errors.NotReady,),
    ("GET", "/v1/posture/blast-radius"): (errors.NotReady, errors.NotFound),
    ("GET", "/v1/posture/orchestrator"): (errors.NotReady, errors.NotFound),
    ("GET", "/v1/posture/coverage"): (errors.NotReady,),
}


def route_errors(route: Any) -> dict[int, set[str]]:
    """`{status: codes}` of every error `route` can answer, its dependencies' included."""
    raised: list[type[errors.GateError]] = []
    for method in sorted(route.methods - {"HEAD"}):
        raised.extend(RAISES[(method, route.path)])
    calls = set(_calls(route.dependant))
    if route.endpoint in security.ROLE_CHECKED:  # checks its caller itself (the hot routes)
        raised.extend((errors.Unauthenticated, errors.Forbidden))
    elif security.authenticated in calls:
        raised.append(errors.Unauthenticated)
        if any(getattr(call, "__name__", "") == "with_role" for call in calls):
            raised.append(errors.Forbidden)
    dependant = route.dependant
    if dependant.query_params or dependant.path_params or route.body_field:
        raised.append(http.UnprocessableRequest)
    if route.body_field:  # FastAPI: a body that is not JSON is 400 `invalid_parameter`
        raised.append(errors.InvalidRequest)
    table: dict[int, set[str]] = {}
    for cls in raised:
        table.setdefault(http.status_of(cls("")), set()).add(cls.code)
    return table


def api_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """The API routes (as FastAPI resolves included routers) that the document describes."""
    for route in routing.iter_route_contexts(list(routes)):
        if isinstance(route.original_route, routing.APIRoute) and route.include_in_schema:
            yield route


def document(schema: dict[str, Any], routes: Iterable[Any]) -> None:
    """Write every route's error responses, from `route_errors`, into the OpenAPI `schema`.

    FastAPI's own 422 (`HTTPValidationError`) is replaced: the handlers answer `Error`.
    """
    for route in api_routes(routes):
        for method in route.methods - {"HEAD"}:
            responses = schema["paths"][route.path][method.lower()]["responses"]
            for status, codes in sorted(route_errors(route).items()):
                given = responses.get(str(status), {})
                description = given.get("description") or "Error"
                if description == "Validation Error":
                    description = "The request does not match the schema"
                responses[str(status)] = {
                    **given,
                    "description": f"{description} (code: {', '.join(sorted(codes))})",
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _calls(dependant: Dependant) -> Iterable[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)
