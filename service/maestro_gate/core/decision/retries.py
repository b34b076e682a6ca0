"""Idempotent retries: a request that carries a `request_id` is decided and audited once.

A caller that did not get its answer (a timeout, a dropped connection, a 503 from a proxy)
sends the same request again with the same `request_id`. The gate looks for a decision record
of the same subject with that `request_id`:

- found, and the request is the same (the SHA-256 of its canonical JSON equals the record's
  `input_sha256`): the answer is the recorded decision, rebuilt from the record (same
  `decision_id`, reasons, obligations, approval, audit index). Nothing new is evaluated,
  audited or counted against the agent's budget or rates.
- found, and the request differs: 409 `request_id_reused`. A changed request never receives
  an earlier answer, above all never an earlier allow.
- not found: decided as any request, and its record is found by the next retry.

Concurrent retries within one process wait for the first to finish (`Flights`). The record is
found through the audit store's `request:` tag, written in the transaction that writes the
record, so a retry that reaches another replica after the first was recorded gets it too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from maestro_gate.core.decision.approvals import Approval, ticket_of
from maestro_gate.core.decision.controls import Controls, answered
from maestro_gate.core.decision.decisions import (
    AuditRef,
    DecisionResponse,
    PolicyRef,
    check_policy_result,
)
from maestro_gate.core.decision.ports import AuditEntry
from maestro_gate.core.errors import Conflict
from maestro_gate.core.ledger.chain import canonical, sha256_hex

TAG = "request"


class RequestIdReused(Conflict):
    """The request_id names an earlier, different request of the same subject."""

    code = "request_id_reused"


def retry_key(subject: str, request_id: str) -> str:
    """The key a subject's request_id is found by (the audit store's `request:` tag value)."""
    return sha256_hex(canonical([subject, request_id]))


def key_of_record(body: dict[str, Any]) -> str | None:
    """The retry key of a decision record body, or None when it carries no request_id."""
    if body.get("type") != "decision":
        return None
    subject, document = body.get("subject"), body.get("input")
    request_id = document.get("request_id") if isinstance(document, dict) else None
    if not isinstance(subject, str) or not isinstance(request_id, str):
        return None
    return retry_key(subject, request_id)


class RecordedDecisions(Protocol):
    """Where decision records are found by their retry key (the audit store)."""

    async def recorded(self, key: str) -> AuditEntry | None:
        """The decision record with this retry key, or None."""
        ...


def replayed(
    entry: AuditEntry, input_sha256: str, approval: Approval | None = None
) -> DecisionResponse:
    """The answer a decision record gave; RequestIdReused when it was for another request.

    `approval` is the approval the record opened or named, for the ticket of a require_hitl.
    """
    record = json.loads(entry.record)
    if record.get("input_sha256") != input_sha256:
        raise RequestIdReused(
            "this request_id was used for a different request of the same subject; "
            "a changed request needs a new request_id"
        )
    result = check_policy_result(record["result"])
    controls = Controls(
        mode=record["mode"], shadow_layers=frozenset(record.get("shadow_layers", ()))
    )
    answer = answered(result, controls)
    evaluated = result.decision
    return DecisionResponse(
        decision_id=record["decision_id"],
        decision=answer,
        reasons=result.reasons,
        obligations=result.obligations,
        layers=result.layers,
        approval=ticket_of(approval) if answer == "require_hitl" and approval else None,
        policy=PolicyRef.model_validate(record["policy"]),
        audit=AuditRef(index=entry.idx, leaf_hash=entry.leaf_hash.hex()),
        mode=controls.mode,
        evaluated_decision=evaluated if controls.mode == "shadow" or answer != evaluated else None,
    )


def approval_id_of(entry: AuditEntry) -> str | None:
    """The id of the approval a decision record opened or named."""
    approval = json.loads(entry.record).get("approval")
    return approval.get("id") if isinstance(approval, dict) else None


class Flights:
    """One decision at a time per retry key in this process; later arrivals wait for it."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Event] = {}

    async def alone(self, key: str, work: Callable[[], Awaitable[DecisionResponse]]) -> Any:
        """Run `work` once no other work for `key` is running here."""
        while (running := self._running.get(key)) is not None:
            await running.wait()
        done = self._running[key] = asyncio.Event()
        try:
            return await work()
        finally:
            del self._running[key]
            done.set()
