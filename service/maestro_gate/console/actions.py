"""Console pages that act: the approval queue and votes, the mode and the emergency stops.

Each action goes through the API's own code (`api/approvals.py`, `api/admin_state.py`), so
the rules and the audit trail are the API's: a distinct approver who is not the requesting
agent, dual control, audit first; the console adds only the session, the role check and CSRF.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from maestro_gate.api.approvals import cast_vote
from maestro_gate.api.http_errors import STATUS
from maestro_gate.console import render
from maestro_gate.console.access import Reviewer, check_change, reviewer
from maestro_gate.console.state import catalog_of, services
from maestro_gate.core.catalog.model import LayerId
from maestro_gate.core.decision.approvals import now_ms, public_view
from maestro_gate.core.decision.controls import Controls, Stop
from maestro_gate.core.errors import GateError

router = APIRouter(prefix="/console", include_in_schema=False)
QUEUE_MAX = 200
MODES = ("enforce", "shadow")
LAYERS = frozenset(get_args(LayerId))


@router.get("/approvals")
async def approvals(request: Request) -> Response:
    """Pending approvals: the exact action, why it escalated, approvers needed and given, expiry."""
    me = reviewer(request, "approvals")
    return await _approvals_page(request, me, request.query_params.get("done"), None, 200)


async def _approvals_page(
    request: Request, me: Reviewer, done: str | None, problem: str | None, status: int
) -> Response:
    now = now_ms()
    pending = await services(request).approvals.find("pending", QUEUE_MAX, now)
    views = [public_view(a, now) for a in pending]
    for view in views:
        view["mine"] = me.caller.is_requester(view["subject"], view["requested_by"])
        view["voted"] = any(v["principal"] == me.caller.principal for v in view["votes"])
    return render.page(
        "approvals.html",
        status,
        me=me.view(),
        page="approvals",
        approvals=views,
        done=done,
        problem=problem,
    )


@router.get("/approvals/count")
async def approvals_count(request: Request) -> Response:
    """`{pending: n}`, for the live count in the navigation."""
    reviewer(request, "approvals")
    return render.secured(JSONResponse({"pending": services(request).approvals.pending()}))


@router.post("/approvals/{approval_id}/{verdict}")
async def vote(
    request: Request,
    approval_id: str,
    verdict: Literal["approve", "reject"],
    csrf: str = Form("", max_length=200),
    comment: str = Form("", max_length=2000),
) -> Response:
    """Approve or reject as the signed-in approver, by the API's rules (`cast_vote`)."""
    me = reviewer(request, "vote")
    check_change(request, me.session, csrf)
    try:
        await cast_vote(services(request), approval_id, me.caller, verdict, comment.strip() or None)
    except GateError as exc:
        problem = f"{exc.code}: {exc.message}"
        return await _approvals_page(request, me, None, problem, status_of(exc))
    done = "approved" if verdict == "approve" else "rejected"
    return render.secured(RedirectResponse(f"/console/approvals?done={done}", status_code=303))


def status_of(exc: GateError) -> int:
    """The HTTP status the API gives this error."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


@router.get("/controls")
async def controls(request: Request) -> Response:
    """The enforcement mode, the shadow layers and the emergency stops in force."""
    me = reviewer(request, "controls")
    return _controls_page(request, me, request.query_params.get("done"), None, 200)


def _controls_page(
    request: Request, me: Reviewer, done: str | None, problem: str | None, status: int
) -> Response:
    in_force = services(request).controls.current()
    catalog = catalog_of(request)
    layers = [(x.id, f"{x.code} {x.name}") for x in catalog.layers] if catalog else []
    return render.page(
        "controls.html",
        status,
        me=me.view(),
        page="controls",
        mode=in_force.mode,
        shadow=sorted(in_force.shadow_layers),
        stops=in_force.stops,
        layers=layers or [(x, x) for x in sorted(LAYERS)],
        done=done,
        problem=problem,
    )


@router.post("/controls/mode")
async def set_mode(request: Request) -> Response:
    """Set the mode and shadow layers (policy_admin, CSRF-checked), audit first."""
    me = reviewer(request, "controls")
    form = await request.form()
    check_change(request, me.session, _text(form.get("csrf")))
    mode = _text(form.get("mode"))
    layers = frozenset(str(x) for x in form.getlist("shadow_layers"))
    if mode not in MODES or not layers <= LAYERS:
        return _controls_page(request, me, None, "invalid_request: unknown mode or layer", 400)
    controls = services(request).controls
    return await _admin(
        request,
        me,
        "mode set",
        lambda: controls.set_mode(mode, layers, me.caller.principal),  # type: ignore[arg-type]
    )


@router.post("/controls/stops")
async def add_stop(
    request: Request,
    csrf: str = Form("", max_length=200),
    kind: str = Form("", max_length=20),
    id: str = Form("", max_length=512),
    reason: str = Form("", max_length=2000),
) -> Response:
    """Stop an agent or an agent class now (policy_admin, CSRF-checked), audit first."""
    me = reviewer(request, "controls")
    check_change(request, me.session, csrf)
    if kind not in ("agent", "class") or not id.strip():
        return _controls_page(
            request, me, None, "invalid_request: a stop needs a kind and an id", 400
        )
    stop = Stop(
        kind=kind,  # type: ignore[arg-type]  # checked just above
        id=id.strip(),
        by=me.caller.principal,
        at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        reason=reason.strip() or None,
    )
    controls = services(request).controls
    return await _admin(request, me, "stop added", lambda: controls.add_stop(stop))


@router.post("/controls/stops/lift")
async def lift_stop(
    request: Request,
    csrf: str = Form("", max_length=200),
    kind: str = Form("", max_length=20),
    id: str = Form("", max_length=512),
) -> Response:
    """Lift an emergency stop (policy_admin, CSRF-checked), audit first."""
    me = reviewer(request, "controls")
    check_change(request, me.session, csrf)
    if kind not in ("agent", "class"):
        return _controls_page(
            request, me, None, "invalid_request: kind must be agent or class", 400
        )
    controls = services(request).controls
    return await _admin(
        request,
        me,
        "stop lifted",
        lambda: controls.lift_stop(kind, id, me.caller.principal),  # type: ignore[arg-type]
    )


async def _admin(
    request: Request, me: Reviewer, done: str, change: Callable[[], Awaitable[Controls]]
) -> Response:
    """Run one audited control change; show its refusal on the page."""
    try:
        await change()
    except GateError as exc:
        problem = f"{exc.code}: {exc.message}"
        return _controls_page(request, me, None, problem, status_of(exc))
    return render.secured(RedirectResponse(f"/console/controls?done={done}", status_code=303))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
