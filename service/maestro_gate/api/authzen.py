"""OpenID AuthZEN 1.0 beside `/v1`: `POST /access/v1/evaluation`, `POST /access/v1/evaluations`
and `GET /.well-known/authzen-configuration`.

Each evaluation is mapped to one of the gate's three request kinds (core/decision/authzen.py),
validated as strictly as a `POST /v1/decide` body, and decided by the same decision service, so it
is audited, bound to its caller's subjects and retried like any decision. The same credentials and
role (`agent`) as `/v1/decide`. A request that is not an AuthZEN request is 400 `invalid_request`
(the body is OPA's error shape, as every error of the gate); in a batch, an evaluation that cannot
be decided is `{"decision": false, "context": {"error": {status, code, message}}}` and the others
are still decided. `X-Request-ID` is echoed on every answer and is the evaluation's `request_id`
(`<id>/<n>` for the n-th of a batch), so a retried call gets the decisions already recorded.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from maestro_gate.api import http_errors
from maestro_gate.api.body import parse_json, read_body
from maestro_gate.api.decide import parse_request
from maestro_gate.api.direct import DirectRoute
from maestro_gate.api.security import SECURITY, caller_holding, checks_roles
from maestro_gate.api.services import services_of
from maestro_gate.core.decision import authzen
from maestro_gate.core.decision.admission import weight, work_units
from maestro_gate.core.decision.callers import AGENT, Caller
from maestro_gate.core.errors import GateError
from maestro_gate.runtime import Services

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"
CONFIGURATION = "/.well-known/authzen-configuration"
REQUEST_ID = "x-request-id"
_AGENT = frozenset({AGENT})
Model = TypeVar("Model", bound=BaseModel)


def add_routes(app: FastAPI) -> None:
    """Serve the AuthZEN routes on `app` (the evaluations as DirectRoutes, like /v1/decide)."""
    routes: list[tuple[str, Any, str, Any, str]] = [
        (EVALUATION, evaluation, "AuthzenEvaluation", authzen.Decision, "Evaluation"),
        (EVALUATIONS, evaluations, "AuthzenEvaluations", authzen.Answers, "Evaluations"),
    ]
    for path, endpoint, body, answer, summary in routes:
        app.router.add_api_route(
            path,
            endpoint,
            route_class_override=DirectRoute,
            methods=["POST"],
            tags=["authzen"],
            response_model=answer,
            summary=f"AuthZEN 1.0 Access {summary}",
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                    },
                },
                "security": SECURITY,
            },
        )
    app.add_api_route(
        CONFIGURATION,
        configuration,
        methods=["GET"],
        tags=["authzen"],
        summary="AuthZEN 1.0 Policy Decision Point metadata",
    )


def request_schemas() -> dict[str, Any]:
    """Component schemas of the two request bodies, for the OpenAPI document."""
    ref = "#/components/schemas/{model}"
    schemas: dict[str, Any] = {}
    for name, model in (
        ("AuthzenEvaluation", authzen.Evaluation),
        ("AuthzenEvaluations", authzen.Evaluations),
    ):
        schema = model.model_json_schema(ref_template=ref)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    # Without `evaluations` the request is one evaluation, whose three keys are required.
    schemas["AuthzenEvaluations"]["anyOf"] = [
        {
            "required": ["subject", "action", "resource"],
            "properties": {
                "subject": {"$ref": ref.format(model="SubjectEntity")},
                "action": {"$ref": ref.format(model="Action")},
                "resource": {"$ref": ref.format(model="Entity")},
            },
        },
        {
            "required": ["evaluations"],
            "properties": {"evaluations": {"type": "array", "minItems": 1}},
        },
    ]
    return schemas


@checks_roles(AGENT)
async def evaluation(request: Request) -> Response:
    """The Decision for one evaluation; `decision` is true only when the gate allows."""
    received = time.perf_counter()
    request_id = request.headers.get(REQUEST_ID)
    try:
        caller = await caller_holding(request, _AGENT)
        services = services_of(request)
        body = _valid(authzen.Evaluation, await _read(services, caller, request))
        decided = await _decide(services, caller, body, request_id, received)
    except GateError as exc:
        return _echo(http_errors.gate_error_response(exc), request_id)
    return _answer(decided.model_dump(exclude_none=True), request_id)


@checks_roles(AGENT)
async def evaluations(request: Request) -> Response:
    """One Decision per evaluation, in order, stopping as `options.evaluations_semantic` says."""
    request_id = request.headers.get(REQUEST_ID)
    try:
        caller = await caller_holding(request, _AGENT)
        services = services_of(request)
        batch = _valid(authzen.Evaluations, await _read(services, caller, request))
    except GateError as exc:
        return _echo(http_errors.gate_error_response(exc), request_id)
    if not batch.evaluations:  # no `evaluations`: one Access Evaluation, answered as one
        return await _single(services, caller, batch.items()[0], request_id)
    semantic = batch.options.evaluations_semantic if batch.options else "execute_all"
    items = batch.items()
    decided: list[authzen.Decision] = []
    for n, item in enumerate(items):
        numbered = f"{request_id}/{n}" if request_id and len(items) > 1 else request_id
        decided.append(await _decide_item(services, caller, item, numbered))
        if authzen.stops(semantic, decided[-1]):
            break
    listed = authzen.DecisionList(evaluations=decided)
    return _answer(listed.model_dump(exclude_none=True), request_id)


async def _single(
    services: Services, caller: Caller, item: authzen.PartialEvaluation, request_id: str | None
) -> Response:
    """An Access Evaluations request without `evaluations`, answered as an Access Evaluation."""
    try:
        decided = await _decide(
            services, caller, authzen.complete(item), request_id, time.perf_counter()
        )
    except GateError as exc:
        return _echo(http_errors.gate_error_response(exc), request_id)
    return _answer(decided.model_dump(exclude_none=True), request_id)


async def configuration(request: Request) -> dict[str, str]:
    """Where this PDP's AuthZEN endpoints are (no search APIs are offered)."""
    base = str(request.base_url).rstrip("/")
    return {
        "policy_decision_point": base,
        "access_evaluation_endpoint": base + EVALUATION,
        "access_evaluations_endpoint": base + EVALUATIONS,
    }


async def _decide_item(
    services: Services, caller: Caller, item: authzen.PartialEvaluation, request_id: str | None
) -> authzen.Decision:
    """One evaluation of a batch, decided; or false with the error that kept it undecided."""
    try:
        return await _decide(
            services, caller, authzen.complete(item), request_id, time.perf_counter()
        )
    except GateError as exc:
        return authzen.refused(http_errors.status_of(exc), exc.code, exc.message)


async def _decide(
    services: Services,
    caller: Caller,
    evaluation: authzen.Evaluation,
    request_id: str | None,
    received: float,
) -> authzen.Decision:
    """Map, validate, charge the caller's work budget, and decide through the decision service."""
    try:
        mapped = parse_request(authzen.to_request(evaluation, request_id))
    except http_errors.UnprocessableRequest as exc:
        raise authzen.AuthzenInvalid(
            f"the evaluation does not map to a gate request: {exc.message}", errors=exc.errors
        ) from None
    work = services.decisions.work
    if work is not None:
        work.charge(caller.principal, work_units(weight(mapped), 0))
    response = await services.decisions.decide(mapped, caller, received=received)
    return authzen.to_decision(response)


async def _read(services: Services, caller: Caller, request: Request) -> Any:
    """The JSON body, bounded and strictly parsed, charged to the caller's work budget."""
    work = services.decisions.work
    if work is not None:
        work.admit(caller.principal)
    size = 0
    try:
        raw = await read_body(request, services.max_body_bytes)
        size = len(raw)
        return parse_json(raw, services.max_depth)
    finally:
        if work is not None:
            work.charge(caller.principal, work_units(0, size))


def _valid(model: type[Model], body: Any) -> Model:
    """`body` as `model`; AuthzenInvalid (400) naming each problem."""
    if not isinstance(body, dict):
        raise authzen.AuthzenInvalid("an AuthZEN request body is a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise authzen.AuthzenInvalid(
            "the request is not an AuthZEN 1.0 request",
            errors=http_errors.validation_details(list(exc.errors(include_input=False))),
        ) from None


def _answer(body: dict[str, Any], request_id: str | None) -> Response:
    return _echo(JSONResponse(body), request_id)


def _echo(response: Response, request_id: str | None) -> Response:
    """`response` carrying the caller's `X-Request-ID`, as AuthZEN requires."""
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id
    return response
