"""Human approvals bound to the exact action: digest, bundle revision, expiry, single use.

The action digest is the SHA-256 (hex) of the RFC 8785 form of the request document
(`model_dump(mode="json", exclude_none=True)`) with the fields that change between two
submissions of the same action removed: `request_id`, `approval_id`, `context.timestamp` and
`context.trace_id`. Everything else (subject, session and run ids, arguments, target, delegation
chain, goal, attributes) is bound: change any of it and the approval no longer matches.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from maestro_gate.core.decision.callers import Caller
from maestro_gate.core.decision.decisions import ApprovalTicket
from maestro_gate.core.errors import AlreadyVoted, ApprovalClosed, SelfApproval
from maestro_gate.core.ledger.chain import canonical, sha256_hex

VOLATILE_FIELDS = ("request_id", "approval_id", "context.timestamp", "context.trace_id")

Stored = Literal["pending", "granted", "rejected", "used"]
Status = Literal["pending", "granted", "rejected", "expired", "used", "mismatch"]
UNUSABLE: frozenset[str] = frozenset({"rejected", "expired", "used", "mismatch"})


def now_ms() -> int:
    """Wall-clock epoch milliseconds (approval times are compared across replicas)."""
    return time.time_ns() // 1_000_000


def action_digest(document: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical request without its volatile fields."""
    stable = copy.deepcopy(document)
    for dotted in VOLATILE_FIELDS:
        node: Any = stable
        *parents, last = dotted.split(".")
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return sha256_hex(canonical(stable))


@dataclass(frozen=True, slots=True)
class Vote:
    """One approver's verdict on an approval."""

    principal: str
    verdict: Literal["approve", "reject"]
    at_ms: int
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    """A pending human decision on one action, as stored."""

    id: str
    digest: str
    subject: str
    requested_by: str | None
    kind: str
    summary: dict[str, Any]
    bundle_revision: str
    bundle_digest: str
    rules: list[str]
    approvers_required: int
    status: Stored
    created_at_ms: int
    expires_at_ms: int
    decision_id: str
    used_by: str | None = None
    used_at_ms: int | None = None
    votes: list[Vote] = field(default_factory=list)

    @property
    def approvals(self) -> int:
        """Distinct approvers who approved."""
        return sum(1 for v in self.votes if v.verdict == "approve")

    def status_at(self, now_ms: int) -> Status:
        """The stored status, or `expired` once an open approval is past its expiry."""
        if self.status in ("pending", "granted") and now_ms >= self.expires_at_ms:
            return "expired"
        return self.status

    def status_for(self, digest: str, revision: str | None, now_ms: int) -> Status:
        """The status seen by a re-submission with `digest` under bundle `revision`."""
        if digest != self.digest or revision != self.bundle_revision:
            return "mismatch"
        return self.status_at(now_ms)

    def with_votes(self, votes: list[Vote], status: Stored) -> Approval:
        """A copy with new votes and status."""
        return replace(self, votes=votes, status=status)


def check_vote(approval: Approval, caller: Caller, now_ms: int) -> None:
    """Raise unless `caller` may vote on `approval` now (fail closed on expiry)."""
    if caller.is_requester(approval.subject, approval.requested_by):
        raise SelfApproval("the requesting agent (or a principal bound to it) cannot approve")
    if any(v.principal == caller.principal for v in approval.votes):
        raise AlreadyVoted(f"{caller.principal} has already voted on approval {approval.id}")
    status = approval.status_at(now_ms)
    if status != "pending":
        raise ApprovalClosed(f"approval {approval.id} is {status}; it takes no more votes")


def tally(approval: Approval, vote: Vote) -> Approval:
    """The approval after `vote`: one rejection rejects; enough approvals grant."""
    votes = [*approval.votes, vote]
    if vote.verdict == "reject":
        return approval.with_votes(votes, "rejected")
    approved = sum(1 for v in votes if v.verdict == "approve")
    status: Stored = "granted" if approved >= approval.approvers_required else "pending"
    return approval.with_votes(votes, status)


def public_view(approval: Approval, now_ms: int) -> dict[str, Any]:
    """The approval as the HTTP API and audit events show it."""
    return {
        "id": approval.id,
        "status": approval.status_at(now_ms),
        "subject": approval.subject,
        "requested_by": approval.requested_by,
        "kind": approval.kind,
        "summary": approval.summary,
        "action_digest": approval.digest,
        "bundle_revision": approval.bundle_revision,
        "rules": approval.rules,
        "approvers_required": approval.approvers_required,
        "approvals": approval.approvals,
        "votes": [
            {
                "principal": v.principal,
                "verdict": v.verdict,
                "at": iso(v.at_ms),
                "comment": v.comment,
            }
            for v in approval.votes
        ],
        "created_at": iso(approval.created_at_ms),
        "expires_at": iso(approval.expires_at_ms),
        "decision_id": approval.decision_id,
        "used_by": approval.used_by,
        "used_at": iso(approval.used_at_ms) if approval.used_at_ms else None,
    }


def iso(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC timestamp."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


class ApprovalStore(Protocol):
    """Durable approvals; every write is atomic, `consume` marks a granted approval used once."""

    async def create(self, approval: Approval) -> None:
        """Store a new pending approval."""
        ...

    async def get(self, approval_id: str) -> Approval | None:
        """The approval, or None."""
        ...

    async def vote(self, approval_id: str, caller: Caller, vote: Vote) -> Approval:
        """Check and record a vote atomically; raise NotFound, SelfApproval, Conflict."""
        ...

    async def consume(
        self, approval_id: str, digest: str, revision: str, decision_id: str, now_ms: int
    ) -> bool:
        """Mark a granted, matching, unexpired approval used; False if it was not."""
        ...

    async def release(self, approval_id: str, decision_id: str) -> None:
        """Undo `consume` by `decision_id` (its record could not be written): granted again."""
        ...

    async def find(self, status: Status | None, limit: int, now_ms: int) -> list[Approval]:
        """Approvals, newest first, optionally with one status (as seen at `now_ms`)."""
        ...

    def pending(self) -> int:
        """Pending, unexpired approvals as last counted (no I/O: the hot path reads it)."""
        ...


def ticket_of(approval: Approval) -> ApprovalTicket:
    """The ticket a `require_hitl` answer carries for a pending `approval`."""
    return ApprovalTicket(
        id=approval.id,
        approvers_required=approval.approvers_required,
        expires_at=datetime.fromtimestamp(approval.expires_at_ms / 1000, UTC).isoformat(
            timespec="milliseconds"
        ),
        status="pending",
        approvals=approval.approvals,
    )
