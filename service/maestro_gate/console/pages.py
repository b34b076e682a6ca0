"""Console pages: sign-in and out, the decision log, a decision, and the proofs its page checks.

The JSON routes under `/console/audit/` answer the decision page's script with what the
`/v1/audit` API gives (the latest signed checkpoint, inclusion and consistency proofs), for the
session's auditor; the script trusts none of it until its own checks pass (`static/verify.js`).
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from maestro_gate.console import render
from maestro_gate.console.access import (
    CONSOLE_ROLES,
    Reviewer,
    check_change,
    reviewer,
    same_origin,
    sessions,
)
from maestro_gate.console.sessions import COOKIE, IDLE_S, LOGIN_COOKIE
from maestro_gate.console.state import catalog_of, services
from maestro_gate.console.views import FilterError, decision_view, log_row, parse_filter
from maestro_gate.core.decision.approvals import now_ms, public_view
from maestro_gate.core.errors import Unauthenticated
from maestro_gate.core.ledger.chain import MAX_SAFE_INTEGER

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 50


@router.get("")
async def home(request: Request) -> Response:
    """The first page the signed-in role may open."""
    me = reviewer(request, None)
    pages = me.navigation()
    if not pages:
        return render.page(
            "refused.html", 403, me=me.view(), problem="No console page fits this role."
        )
    return RedirectResponse(f"/console/{pages[0][0]}", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The sign-in form, with a fresh login CSRF token (cookie and hidden field)."""
    return _login_page(request, None, 200)


def _login_page(request: Request, problem: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(24)
    response = render.page("login.html", status, me=None, login_csrf=token, problem=problem)
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=600)
    return response


@router.post("/login")
async def login(
    request: Request,
    credential: str = Form("", max_length=16384),
    csrf: str = Form("", max_length=200),
) -> Response:
    """Sign in with an API key or a JWT; a caller without a console role is refused."""
    same_origin(request)
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    if not csrf or not secrets.compare_digest(csrf.encode(), expected.encode()):
        return _login_page(request, "The sign-in form expired; please try again.", 403)
    running = services(request)
    credential = credential.strip()
    try:
        caller = running.authenticator.authenticate(credential or None, None)
    except Unauthenticated as exc:
        running.refused("unauthorized")
        return _login_page(request, f"Not signed in: {exc.message}.", 401)
    if caller.roles.isdisjoint(CONSOLE_ROLES):
        running.refused("forbidden")
        return _login_page(
            request,
            f"{caller.principal} has no console role (auditor, approver, policy_admin).",
            403,
        )
    token, _ = sessions(request).open(credential)
    response = RedirectResponse("/console", status_code=303)
    _set_cookie(request, response, COOKIE, token, max_age=IDLE_S * 16)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return render.secured(response)


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("", max_length=200)) -> Response:
    """End the session (CSRF-checked) and return to the sign-in page."""
    token = request.cookies.get(COOKIE)
    session = sessions(request).get(token)
    if session is not None:
        check_change(request, session, csrf)
        sessions(request).close(token)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return render.secured(response)


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("/log")
async def log(request: Request) -> Response:
    """The decision log, newest first, filtered and paged by keyset (`before`)."""
    me = reviewer(request, "log")
    try:
        where, shown = parse_filter(request.query_params)
        before = _index(request.query_params.get("before"), "before")
    except FilterError as exc:
        return _log_page(me, [], {}, None, None, str(exc), 400)
    entries = await services(request).audit.page(where, before, PAGE_SIZE + 1)
    rows = [log_row(e) for e in entries[:PAGE_SIZE]]
    older = rows[-1]["index"] if len(entries) > PAGE_SIZE else None
    return _log_page(me, rows, shown, before, older, None, 200)


def _log_page(
    me: Reviewer,
    rows: list[dict[str, Any]],
    shown: dict[str, str],
    before: int | None,
    older: int | None,
    problem: str | None,
    status: int,
) -> Response:
    return render.page(
        "log.html",
        status,
        me=me.view(),
        page="log",
        rows=rows,
        shown=shown,
        before=before,
        older=older,
        problem=problem,
    )


def _index(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) > MAX_SAFE_INTEGER:
        raise FilterError(f"{name} must be a record index (a whole number)")
    return int(raw)


@router.get("/decisions/{decision_id}")
async def decision(request: Request, decision_id: str) -> Response:
    """One record: request, reasons, verdicts, approval, policy, and the raw canonical record."""
    me = reviewer(request, "log")
    running = services(request)
    entry = await running.audit.entry(decision_id)
    if entry is None:
        return render.page(
            "refused.html", 404, me=me.view(), problem=f"No audit record for {decision_id}."
        )
    view = decision_view(entry, catalog_of(request))
    approval = None
    found = view["record"].get("approval")
    if isinstance(found, dict):
        stored = await running.approvals.get(str(found.get("id")))
        approval = public_view(stored, now_ms()) if stored is not None else None
    return render.page(
        "decision.html",
        me=me.view(),
        page="log",
        d=view,
        approval=approval,
        approval_ref=found,
    )


@router.get("/audit/checkpoint")
async def checkpoint(request: Request) -> Response:
    """The latest signed checkpoint note (none yet: `null`)."""
    reviewer(request, "log")
    latest = await services(request).audit.latest_checkpoint()
    body = None if latest is None else {"tree_size": latest.size, "note": latest.note}
    return render.secured(JSONResponse({"checkpoint": body}))


@router.post("/audit/checkpoint")
async def sign_checkpoint(request: Request) -> Response:
    """Sign a checkpoint of the log as it is now (CSRF header required)."""
    me = reviewer(request, "log")
    check_change(request, me.session, None)
    checkpointer = services(request).checkpoints
    if checkpointer.signer is None:
        return render.secured(JSONResponse({"problem": "no checkpoint signing key"}, 503))
    stored = await checkpointer.issue()
    return render.secured(
        JSONResponse({"checkpoint": {"tree_size": stored.size, "note": stored.note}})
    )


@router.get("/audit/inclusion")
async def inclusion(request: Request) -> Response:
    """The inclusion proof of record `index` in the tree of `tree_size` records."""
    reviewer(request, "log")
    audit = services(request).audit
    try:
        index = _index(request.query_params.get("index"), "index")
        size = _index(request.query_params.get("tree_size"), "tree_size")
    except FilterError as exc:
        return render.secured(JSONResponse({"problem": str(exc)}, 400))
    if index is None or size is None or index >= size or size > await audit.size():
        return render.secured(JSONResponse({"problem": "no such record in that tree"}, 404))
    proof = await audit.inclusion_proof(index, size)
    return render.secured(
        JSONResponse({"index": index, "tree_size": size, "proof": [p.hex() for p in proof]})
    )


@router.get("/audit/consistency")
async def consistency(request: Request) -> Response:
    """The consistency proof from a tree of `first` records to one of `second`."""
    reviewer(request, "log")
    audit = services(request).audit
    try:
        first = _index(request.query_params.get("first"), "first")
        second = _index(request.query_params.get("second"), "second")
    except FilterError as exc:
        return render.secured(JSONResponse({"problem": str(exc)}, 400))
    if first is None or second is None or not 0 < first <= second or second > await audit.size():
        return render.secured(JSONResponse({"problem": "no proof between those sizes"}, 404))
    proof = await audit.consistency_proof(first, second)
    return render.secured(
        JSONResponse({"first": first, "second": second, "proof": [p.hex() for p in proof]})
    )


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """A stylesheet or script of the console package."""
    found = render.static_file(name)
    if found is None:
        return Response(status_code=404)
    data, content_type = found
    return Response(
        data,
        media_type=content_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
