"""`POST /v1/decide` straight from ASGI: no router, middleware or dependency solving.

The decision is the hot path, and FastAPI's layers around it (error and exception middleware,
route matching, `solve_dependencies`) cost about as much GIL time as our own code. `GateApp`
(`api/app.py`) sends here exactly the requests FastAPI would route to the decide endpoint, and
everything else to FastAPI. Nothing is decided twice over: the same `security.caller_with` as the
router's `require(AGENT)`, the same `decide.answer` as the route, and the error handlers' own
`errors.gate_error_response` and `errors.unexpected_response`. The one difference: a client that
disconnects while its body is read gets no answer and leaves no error in the log.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.datastructures import State
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from maestro_gate.api import errors
from maestro_gate.api.decide import answer
from maestro_gate.api.security import caller_with
from maestro_gate.core.callers import AGENT
from maestro_gate.core.errors import GateError
from maestro_gate.wiring import Gate

PATH = "/v1/decide"
_AGENT = frozenset({AGENT})


def takes(scope: Scope) -> bool:
    """True for the requests FastAPI's router would give the decide route (mounted or not).

    A limit on the body set by an enclosing app is enforced by FastAPI's middleware, so such
    requests are left to it.
    """
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and get_route_path(scope) == PATH
        and MAX_BODY_SIZE_SCOPE_KEY not in scope
    )


async def decide(state: State, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request as the decide route, its dependencies and error handlers would.

    An unexpected exception is answered 500 and then re-raised, as Starlette's
    `ServerErrorMiddleware` does, so that the server logs it and closes the connection.
    """
    request = Request(scope, receive)
    response: Response | None = None
    try:
        try:
            gate: Gate = state.gate
            caller = await caller_with(gate, request, _AGENT)
            response = await answer(gate, caller, request)
        except GateError as exc:
            response = errors.gate_error_response(exc)
        await response(scope, receive, send)
    except ClientDisconnect:
        return
    except Exception as exc:
        failure = errors.unexpected_response(exc)
        if response is None:
            await failure(scope, receive, send)
        raise
