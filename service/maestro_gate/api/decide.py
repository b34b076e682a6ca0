"""`POST /v1/decide`: validate the body, decide, answer with the audited decision.

The route reads the body itself (bounded, strictly parsed, charged to the caller's work budget)
and hands the request to the decision service every front door shares (`core/decision/deciding.py`).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from maestro_gate.api.body import parse_json, read_body
from maestro_gate.api.direct import DirectRoute
from maestro_gate.api.http_errors import UnprocessableRequest, validation_details
from maestro_gate.api.security import SECURITY, caller_holding, checks_roles
from maestro_gate.api.services import services_of
from maestro_gate.core.decision.admission import weight, work_units
from maestro_gate.core.decision.callers import AGENT, Caller
from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.requests import KINDS, REQUEST_ADAPTER, AnyRequest
from maestro_gate.runtime import Services

_REQUEST_SCHEMA = REQUEST_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
_AGENT = frozenset({AGENT})


def add_route(app: FastAPI) -> None:
    """Serve `POST /v1/decide` on `app`: a DirectRoute of the app itself (api/direct.py).

    A route of the app is reached without going through an included router, which costs
    event-loop time on every request, and the first route is matched first.
    """
    app.router.add_api_route(
        "/v1/decide",
        decide,
        route_class_override=DirectRoute,
        methods=["POST"],
        tags=["decisions"],
        response_model=DecisionResponse,
        summary="Decide an agent action, data movement or delegation",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/DecisionRequest"}}
                },
            },
            "security": SECURITY,
        },
    )
    # First among the routes (before FastAPI's /openapi.json and /docs), which the router tries
    # in order for every request; the paths are disjoint, so only the order of trying changes.
    app.router.routes.insert(0, app.router.routes.pop())


@checks_roles(AGENT)
async def decide(request: Request) -> Response:
    """Decide one request; a deny is a 200 with `decision: deny`."""
    received = time.perf_counter()
    caller = await caller_holding(request, _AGENT)
    services = services_of(request)
    parsed = await read_request(services, caller, request)
    response = await services.decisions.decide(parsed, caller, received=received)
    return Response(response.model_dump_json(exclude_none=True), media_type="application/json")


async def read_request(services: Services, caller: Caller, request: Request) -> AnyRequest:
    """The decision request in `request`'s body, for an authenticated `caller`; errors raise.

    The body is bounded and parsed strictly (api/body.py), and what reading and parsing it cost
    is charged to the caller's work budget, refused bodies included.
    """
    work = services.decisions.work
    if work is not None:
        work.admit(caller.principal)  # before the body is read: refusing costs next to nothing
    size, parsed = 0, None
    try:
        raw = await read_body(request, services.max_body_bytes)
        size = len(raw)
        parsed = parse_request(parse_json(raw, services.max_depth))
        return parsed
    finally:  # a refused body cost its parse too
        if work is not None:
            work.charge(caller.principal, work_units(weight(parsed) if parsed else 0, size))


def parse_request(body: Any) -> AnyRequest:
    """Validate a parsed body as one of the three request kinds, with a precise error."""
    if not isinstance(body, dict):
        raise UnprocessableRequest("request body must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise UnprocessableRequest(
            f"`kind` must be one of {', '.join(KINDS)}; got {kind!r}"
            if kind is not None
            else f"`kind` is required: one of {', '.join(KINDS)}",
            errors=[
                {"code": "unknown_kind", "message": "unknown or missing kind", "location": "/kind"}
            ],
        )
    try:
        return REQUEST_ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise UnprocessableRequest(
            "request does not match the schema",
            errors=validation_details([_untagged(e) for e in exc.errors(include_input=False)]),
        ) from None


def _untagged(error: Any) -> Any:
    loc = tuple(error.get("loc", ()))
    return {**error, "loc": loc[1:]} if loc and loc[0] in KINDS else error


def request_schemas() -> dict[str, Any]:
    """Component schemas for the request union, for the OpenAPI document."""
    defs = dict(_REQUEST_SCHEMA.get("$defs", {}))
    union = {k: v for k, v in _REQUEST_SCHEMA.items() if k != "$defs"}
    defs["DecisionRequest"] = union
    defs["Error"] = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
            "decision_id": {"type": "string"},
        },
    }
    return defs
