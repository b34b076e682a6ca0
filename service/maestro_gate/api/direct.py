"""`DirectRoute`: a documented API route whose endpoint takes the Request and returns the Response.

The decision routes are the hot path, and FastAPI's own work around an endpoint (solving its
dependencies, validating and serialising) costs about as much event-loop time as deciding.
A DirectRoute is matched, documented in OpenAPI and wrapped in the app's error handlers like
any other route, through FastAPI's documented extension point (an `APIRoute` subclass
overriding `get_route_handler`), but its endpoint is the whole handler: it authenticates
(`security.caller_holding`), reads its body and answers itself. So it declares no
dependencies, and `api/contract.py` documents its 401 and 403 from `@security.checks_roles`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """An APIRoute served by its endpoint alone: `async def endpoint(request) -> Response`."""

    def __init__(self, path: str, endpoint: Handler, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = direct(endpoint)

    def get_route_handler(self) -> Handler:
        """The endpoint itself."""
        handler: Handler = self.endpoint
        return handler


def direct(endpoint: Handler) -> ASGIApp:
    """The ASGI app that awaits `endpoint(request)` and sends its response.

    FastAPI's `request_response` around an endpoint opens two AsyncExitStacks for dependencies
    with `yield` and maps exceptions to the app's handlers; a DirectRoute has no dependencies,
    and an exception it raises reaches the same handlers one step out, in the app's
    ExceptionMiddleware.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
