"""Waiting for a human approval, and the re-submission it covers: the very same request.

An approval is bound by the gate to the action's digest (core/decision/approvals.py): the subject,
its session, the arguments, the target, the chain. The guard re-submits the request it was given the
approval for, changing only `approval_id` and `request_id` (a new one: the old one names the
`require_hitl` answer), so an approval can never cover another call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from maestro_gate.client.async_client import AsyncGateClient
from maestro_gate.client.exceptions import ActionDenied, ApprovalRefused, ApprovalTimeout
from maestro_gate.client.sync_client import GateClient
from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.requests import AnyRequest

OnHitl = Literal["wait", "pending"]


@dataclass(frozen=True, slots=True)
class HitlPolicy:
    """What a guard does with `require_hitl`.

    `wait`: poll the approval with exponential backoff (`first_poll_s`, doubling up to
    `max_poll_s`) until it is granted, refused, or `deadline_s` (or the approval's own expiry)
    passes; then re-submit. `pending`: return (decorator) or raise (context manager) at once
    with what resumes the call later.
    """

    on_hitl: OnHitl = "wait"
    deadline_s: float = 300.0
    first_poll_s: float = 0.2
    max_poll_s: float = 5.0

    def polls(self) -> Iterator[float]:
        """The waits between polls: first, then doubling, capped."""
        wait = self.first_poll_s
        while True:
            yield wait
            wait = min(self.max_poll_s, wait * 2)


def resubmission(request: AnyRequest, approval_id: str) -> AnyRequest:
    """`request` re-submitted with `approval_id`, under a new request_id."""
    return request.model_copy(update={"approval_id": approval_id, "request_id": None})


def verdict(decision: DecisionResponse, what: str) -> DecisionResponse:
    """`decision` if it allows; ActionDenied with its reasons otherwise."""
    if decision.decision == "allow":
        return decision
    if decision.decision == "deny":
        raise ActionDenied(f"the gate denied {what}", decision=decision)
    raise ApprovalRefused(
        f"the gate still asks a human for {what} after approval", decision=decision
    )


def wait_and_resubmit(
    client: GateClient, request: AnyRequest, asked: DecisionResponse, policy: HitlPolicy, what: str
) -> DecisionResponse:
    """Wait for `asked`'s approval, then the gate's verdict on the re-submitted `request`."""
    approval_id = _ticket(asked)
    deadline = _deadline(asked, policy)
    for wait in policy.polls():
        status = client.approval(approval_id)["status"]
        if _granted(status, asked, what):
            return verdict(client.decide(resubmission(request, approval_id)), what)
        if time.time() + wait >= deadline:
            raise ApprovalTimeout(f"no approval of {what} before the deadline", decision=asked)
        time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - polls() never ends


async def wait_and_resubmit_async(
    client: AsyncGateClient,
    request: AnyRequest,
    asked: DecisionResponse,
    policy: HitlPolicy,
    what: str,
) -> DecisionResponse:
    """`wait_and_resubmit` for asyncio code."""
    approval_id = _ticket(asked)
    deadline = _deadline(asked, policy)
    for wait in policy.polls():
        status = (await client.approval(approval_id))["status"]
        if _granted(status, asked, what):
            return verdict(await client.decide(resubmission(request, approval_id)), what)
        if time.time() + wait >= deadline:
            raise ApprovalTimeout(f"no approval of {what} before the deadline", decision=asked)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - polls() never ends


def _ticket(asked: DecisionResponse) -> str:
    if asked.approval is None:
        raise ApprovalRefused("require_hitl without an approval ticket", decision=asked)
    return asked.approval.id


def _deadline(asked: DecisionResponse, policy: HitlPolicy) -> float:
    mine = time.time() + policy.deadline_s
    expires: Any = asked.approval.expires_at if asked.approval else None
    try:
        theirs = datetime.fromisoformat(expires).timestamp()
    except (TypeError, ValueError):
        return mine
    return min(mine, theirs)


def _granted(status: str, asked: DecisionResponse, what: str) -> bool:
    if status == "granted":
        return True
    if status == "pending":
        return False
    raise ApprovalRefused(f"the approval of {what} is {status}", decision=asked)
