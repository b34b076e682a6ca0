"""Human approvals: list them, read one, approve or reject (`/v1/approvals`).

Listing needs `approver` or `auditor`; reading one also admits the agent it belongs to, so a
runtime can wait for its approval; voting needs `approver`, and never the requesting agent or a
principal bound to it (403 `self_approval`). A second vote by the same approver is 409
`already_voted`; a vote on an approval that is no longer pending (granted, rejected, used,
expired) is 409 `approval_closed`. Every vote is an `approval_approved` or `approval_rejected`
event in the audit trail; a vote whose event cannot be written is withdrawn (by a store that
can, `Withdrawal`) and answered 503 `audit_unavailable`, so no vote stands unaudited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import structlog
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from maestro_gate.api.security import caller_of, require
from maestro_gate.api.services import services_of
from maestro_gate.core.decision.approvals import (
    Approval,
    ApprovalStore,
    Status,
    Vote,
    now_ms,
    public_view,
)
from maestro_gate.core.decision.callers import APPROVER, AUDITOR, Caller
from maestro_gate.core.errors import AuditUnavailable, Forbidden, NotFound
from maestro_gate.runtime import Services

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@runtime_checkable
class Withdrawal(Protocol):
    """A store that can undo a vote it recorded (the SQL stores)."""

    async def withdraw(self, voted: Approval, vote: Vote) -> bool:
        """Undo `vote`, which made the approval `voted`; False if the approval moved on."""
        ...


class VoteBody(BaseModel):
    """An optional note the approver leaves with the vote."""

    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(None, max_length=2000)


@router.get("", summary="List approvals, newest first")
async def list_approvals(
    request: Request,
    _: Annotated[Caller, Depends(require(APPROVER, AUDITOR))],
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Approvals, optionally with one status (`pending`, `granted`, `expired`, …)."""
    now = now_ms()
    found = await services_of(request).approvals.find(status, limit, now)
    return {"approvals": [public_view(a, now) for a in found]}


@router.get("/{approval_id}", summary="Read one approval")
async def get_approval(request: Request, approval_id: str) -> dict[str, Any]:
    """The approval; for approvers, auditors and the agent it belongs to."""
    caller = caller_of(request)
    approval = await _get(services_of(request), approval_id)
    if caller.roles.isdisjoint({APPROVER, AUDITOR}) and not caller.may_act_for(approval.subject):
        raise Forbidden("only approvers, auditors and the requesting agent may read an approval")
    return public_view(approval, now_ms())


@router.post("/{approval_id}/approve", summary="Approve, as a distinct approver")
async def approve(
    request: Request,
    approval_id: str,
    caller: Annotated[Caller, Depends(require(APPROVER))],
    body: VoteBody | None = None,
) -> dict[str, Any]:
    """Record an approval; enough distinct approvers make the approval `granted`."""
    comment = body.comment if body else None
    return await cast_vote(services_of(request), approval_id, caller, "approve", comment)


@router.post("/{approval_id}/reject", summary="Reject; one rejection closes the approval")
async def reject(
    request: Request,
    approval_id: str,
    caller: Annotated[Caller, Depends(require(APPROVER))],
    body: VoteBody | None = None,
) -> dict[str, Any]:
    """Record a rejection; a re-submission with this approval is then denied."""
    comment = body.comment if body else None
    return await cast_vote(services_of(request), approval_id, caller, "reject", comment)


async def cast_vote(
    services: Services,
    approval_id: str,
    caller: Caller,
    verdict: Literal["approve", "reject"],
    comment: str | None = None,
) -> dict[str, Any]:
    """Record `caller`'s vote and its audit event; the approval as it now stands.

    The one way to vote, whatever the front door (this API, the console): the role is the
    caller's to have (`approver`), the store refuses self-approval, double votes and closed
    approvals, and a vote whose event cannot be written is withdrawn (503 `audit_unavailable`).
    """
    vote = Vote(principal=caller.principal, verdict=verdict, at_ms=now_ms(), comment=comment)
    store = services.approvals
    updated = await store.vote(approval_id, caller, vote)
    view = public_view(updated, vote.at_ms)
    event = "approval_approved" if verdict == "approve" else "approval_rejected"
    try:
        await services.events.event(
            event, updated.subject, {**view, "approval_id": updated.id, "by": caller.principal}
        )
    except AuditUnavailable:
        await _withdraw(store, updated, vote)
        raise
    return view


async def _withdraw(store: ApprovalStore, voted: Approval, vote: Vote) -> None:
    log = structlog.get_logger("maestro_gate.approvals")
    withdrawn = False
    if isinstance(store, Withdrawal):
        try:
            withdrawn = await store.withdraw(voted, vote)
        except Exception as exc:
            log.error("vote_withdrawal_failed", approval_id=voted.id, error=str(exc))
    if not withdrawn:
        log.error("vote_unaudited", approval_id=voted.id, by=vote.principal, status=voted.status)


async def _get(services: Services, approval_id: str) -> Approval:
    approval = await services.approvals.get(approval_id)
    if approval is None:
        raise NotFound(f"no approval {approval_id}")
    return approval
