"""The compliance console: a web UI at `/console` for auditors, approvers and policy admins.

Served by the gate in its own process from this package alone (templates and static files),
signed in with the API's credentials into a session cookie (`sessions.py`), limited by the
API's roles (`guard.py`). The decision page checks the record against the signed log in the
reviewer's browser with WebCrypto (`static/verify.js`). `install(app)` mounts it.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from maestro_gate.config import Settings
from maestro_gate.console import actions, mapper, pages, render, stack
from maestro_gate.console.access import CsrfRefused, NotAllowed, SignInRequired
from maestro_gate.console.sessions import SessionStore
from maestro_gate.console.state import ConsoleConfig


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the console's routes on `app`, with its session store and its refusal pages."""
    app.state.console_sessions = SessionStore()
    app.state.console = ConsoleConfig(settings.catalog_dir, settings.bundle_dir)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(stack.router)
    app.include_router(mapper.router)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(NotAllowed, _refused)
    app.add_exception_handler(CsrfRefused, _refused)


async def _sign_in(request: Request, exc: Exception) -> Response:
    """To the sign-in form (a form POST too); the scripts' JSON routes answer 401 instead."""
    path = request.url.path
    if path.startswith("/console/audit/") or path.endswith("/count"):
        return render.secured(
            Response('{"problem": "sign in first"}', 401, media_type="application/json")
        )
    return render.secured(RedirectResponse("/console/login", status_code=303))


async def _refused(request: Request, exc: Exception) -> Response:
    return render.page("refused.html", 403, me=None, problem=str(exc))
