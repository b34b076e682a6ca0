"""The decision service: the one thing every front door calls to have a request decided.

The HTTP route `POST /v1/decide`, the AuthZEN evaluations, the CLI's `decide` and whatever
comes next all call `DecisionService.decide`. It refuses an authenticated caller asking for a
subject it is not bound to (403 `subject_not_bound`, audited as an `impersonation_attempt`
event), then hands the request to the DecisionPoint, which evaluates, audits and answers.
A caller of None is the local operator (the CLI), trusted with any subject.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from maestro_gate.core.admission import WorkBudget
from maestro_gate.core.callers import Caller
from maestro_gate.core.decisions import DecisionResponse
from maestro_gate.core.errors import GateError, SubjectNotBound
from maestro_gate.core.point import DecisionPoint
from maestro_gate.core.requests import AnyRequest


class DecisionService:
    """Binds the caller to the subject, then decides on the DecisionPoint."""

    def __init__(
        self, point: DecisionPoint, *, refused: Callable[[str], None] = lambda code: None
    ) -> None:
        self.point = point
        self._refused = refused
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
        return await self.point.decide(request, caller, received=received)

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
