"""The decision service: the one thing every front door calls to have a request decided.

The HTTP route `POST /v1/decide`, the AuthZEN evaluations, the CLI's `decide` and whatever
comes next all call `DecisionService.decide`. It refuses an authenticated caller asking for a
subject it is not bound to (403 `subject_not_bound`, audited as an `impersonation_attempt`
event); answers a retry (the same subject and `request_id`) with the decision already recorded,
or 409 `request_id_reused` when the request differs (core/decision/retries.py); and otherwise hands
the request to the DecisionPoint, which evaluates, audits and answers. A caller of None is the local
operator (the CLI), trusted with any subject.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from maestro_gate.core.decision.admission import WorkBudget
from maestro_gate.core.decision.callers import Caller
from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.point import DecisionPoint
from maestro_gate.core.decision.ports import AuditEntry
from maestro_gate.core.decision.requests import AnyRequest
from maestro_gate.core.decision.retries import (
    Flights,
    RecordedDecisions,
    approval_id_of,
    replayed,
    retry_key,
)
from maestro_gate.core.errors import AuditUnavailable, GateError, SubjectNotBound
from maestro_gate.core.ledger.chain import canonical, sha256_hex


class DecisionService:
    """Binds the caller to the subject, then decides on the DecisionPoint."""

    def __init__(
        self,
        point: DecisionPoint,
        *,
        refused: Callable[[str], None] = lambda code: None,
        recorded: RecordedDecisions | None = None,
    ) -> None:
        self.point = point
        self._refused = refused
        self._recorded = recorded
        self._flights = Flights()
        self._log = structlog.get_logger("maestro_gate.auth")

    @property
    def work(self) -> WorkBudget | None:
        """The per-caller work budget a front door charges for reading and parsing a body."""
        admission = self.point.admission
        return admission.work if admission is not None else None

    async def decide(
        self, request: AnyRequest, caller: Caller | None = None, *, received: float | None = None
    ) -> DecisionResponse:
        """The audited decision for `request`; SubjectNotBound, InvalidRequest or
        AuditUnavailable when it cannot be given. `received` starts the deadline."""
        if caller is not None:
            await self.ensure_bound(caller, request)
        if request.request_id is None or self._recorded is None:
            return await self.point.decide(request, caller, received=received)
        key = retry_key(request.subject.id, request.request_id)

        async def once() -> DecisionResponse:
            return await self._decide_once(key, request, caller, received)

        # Concurrent retries of one request in this process wait for the first to be recorded.
        response: DecisionResponse = await self._flights.alone(key, once)
        return response

    async def _decide_once(
        self, key: str, request: AnyRequest, caller: Caller | None, received: float | None
    ) -> DecisionResponse:
        """The recorded decision of this request_id if there is one, else a new decision."""
        assert self._recorded is not None
        try:
            entry = await self._recorded.recorded(key)
        except Exception as exc:
            self._log.error("retry_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            raise AuditUnavailable(
                "the audit log could not be searched for an earlier decision of this request_id"
            ) from exc
        if entry is None:
            return await self.point.decide(request, caller, received=received)
        return await self._replay(entry, request)

    async def _replay(self, entry: AuditEntry, request: AnyRequest) -> DecisionResponse:
        """The answer `entry` recorded, for a retry of the same request (RequestIdReused else)."""
        document = request.model_dump(mode="json", exclude_none=True)
        approval_id = approval_id_of(entry)
        approvals = self.point.approvals
        approval = await approvals.get(approval_id) if approvals and approval_id else None
        response = replayed(entry, sha256_hex(canonical(document)), approval)
        self._log.info(
            "decision_replayed",
            decision_id=response.decision_id,
            request_id=request.request_id,
            audit_index=entry.idx,
        )
        return response

    async def ensure_bound(self, caller: Caller, request: AnyRequest) -> None:
        """Refuse (SubjectNotBound, audited) an agent asking for a subject not its own."""
        subject = request.subject.id
        if caller.may_act_for(subject):
            return
        self._refused(SubjectNotBound.code)
        detail = {
            "principal": caller.principal,
            "method": caller.method,
            "bound_subjects": sorted(caller.subjects),
            "claimed_subject": subject,
            "kind": request.kind,
            "request_id": request.request_id,
            "trace_id": request.context.trace_id,
        }
        try:
            await self.point.event("impersonation_attempt", subject, detail)
        except GateError as exc:
            self._log.error("impersonation_not_audited", error=exc.message, **detail)
        raise SubjectNotBound(f"{caller.principal} is not bound to subject {subject}")
