"""`POST /v1/decide`: validate the body, decide, answer with the audited decision.

The route documents the endpoint and serves it when the fast path (`api/fast.py`) stands aside.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from maestro_gate.api.body import parse_json, read_body
from maestro_gate.api.errors import UnprocessableRequest, validation_details
from maestro_gate.api.security import caller_of, ensure_bound
from maestro_gate.core.admission import weight, work_units
from maestro_gate.core.callers import Caller
from maestro_gate.core.decisions import DecisionResponse
from maestro_gate.core.requests import KINDS, REQUEST_ADAPTER
from maestro_gate.wiring import Gate

router = APIRouter(prefix="/v1", tags=["decisions"])

_REQUEST_SCHEMA = REQUEST_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")


@router.post(
    "/decide",
    response_model=DecisionResponse,
    summary="Decide an agent action, data movement or delegation",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DecisionRequest"}}
            },
        }
    },
)
async def decide(request: Request) -> Response:
    """Decide one request; a deny is a 200 with `decision: deny`."""
    return await answer(request.app.state.gate, caller_of(request), request)


async def answer(gate: Gate, caller: Caller, request: Request) -> Response:
    """The decision for an authenticated `caller`, read from `request`'s body; errors raise.

    The one implementation behind both the route above and the ASGI fast path (`api/fast.py`).
    """
    received = time.perf_counter()
    settings = gate.settings
    admission = gate.point.admission
    work = admission.work if admission is not None else None
    if work is not None:
        work.admit(caller.principal)  # before the body is read: refusing costs next to nothing
    size, parsed = 0, None
    try:
        raw = await read_body(request, settings.max_body_bytes)
        size = len(raw)
        parsed = parse_request(parse_json(raw, settings.max_depth))
    finally:  # a refused body cost its parse too
        if work is not None:
            work.charge(caller.principal, work_units(weight(parsed) if parsed else 0, size))
    await ensure_bound(gate, caller, parsed)
    response = await gate.point.decide(parsed, caller=caller, received=received)
    return Response(response.model_dump_json(exclude_none=True), media_type="application/json")


def parse_request(body: Any) -> Any:
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
