"""One error tree with stable codes; the HTTP edge maps each code to a status once.

GateError
├── InvalidRequest          invalid_parameter     400
│   ├── RequestTooLarge     request_too_large     413
│   ├── RequestTooDeep      request_too_deep      400
│   └── RequestTooComplex   request_too_complex   400
├── Unauthenticated         unauthorized          401
├── Forbidden               forbidden             403
│   ├── SubjectNotBound     subject_not_bound     403
│   └── SelfApproval        self_approval         403
├── NotFound                resource_not_found    404
├── Conflict                resource_conflict     409
│   ├── AlreadyVoted        already_voted         409
│   └── ApprovalClosed      approval_closed       409
├── CallerOverloaded        caller_overloaded     429
├── EngineError             engine_error          (never surfaces: becomes a deny)
├── BundleError             bundle_error          (load time; the active bundle stays)
├── AuditUnavailable        audit_unavailable     503
└── NotReady                not_ready             503
"""

from __future__ import annotations

from typing import Any


class GateError(Exception):
    """Base of every error MAESTRO Gate raises on purpose; `code` is stable and public."""

    code = "internal_error"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class InvalidRequest(GateError):
    """The request could not be decided because it is malformed."""

    code = "invalid_parameter"


class RequestTooLarge(InvalidRequest):
    """The body exceeds the configured size cap."""

    code = "request_too_large"


class RequestTooDeep(InvalidRequest):
    """The body nests deeper than the configured limit."""

    code = "request_too_deep"


class RequestTooComplex(InvalidRequest):
    """The request would cost more to evaluate than the gate admits (core/decision/admission.py)."""

    code = "request_too_complex"


class Unauthenticated(GateError):
    """No valid caller credential was presented."""

    code = "unauthorized"


class Forbidden(GateError):
    """The caller is authenticated but may not do this."""

    code = "forbidden"


class SubjectNotBound(Forbidden):
    """An agent credential asked for a decision on behalf of a subject it is not bound to."""

    code = "subject_not_bound"


class SelfApproval(Forbidden):
    """The requesting agent, or a principal bound to it, tried to approve its own action."""

    code = "self_approval"


class NotFound(GateError):
    """The named resource does not exist."""

    code = "resource_not_found"


class Conflict(GateError):
    """The request conflicts with the resource's current state."""

    code = "resource_conflict"


class AlreadyVoted(Conflict):
    """This approver has already voted on the approval."""

    code = "already_voted"


class ApprovalClosed(Conflict):
    """The approval is no longer pending (granted, rejected, used or expired)."""

    code = "approval_closed"


class CallerOverloaded(GateError):
    """The caller holds all the engine work it may (decision/admission.py); it may retry later."""

    code = "caller_overloaded"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EngineError(GateError):
    """The policy engine failed or ran past its deadline; the caller sees a deny."""

    code = "engine_error"


class EngineTimeout(EngineError):
    """Evaluation did not finish before its deadline.

    `settled`, when the engine gives one, completes when the overrunning evaluation has ended
    and its worker is free again (the engines cannot interrupt an evaluation).
    """

    code = "engine_timeout"

    def __init__(self, message: str, *, settled: Any = None) -> None:
        super().__init__(message)
        self.settled = settled


class BundleError(GateError):
    """A policy bundle cannot be activated (parse, compile, unsupported built-in, signature)."""

    code = "bundle_error"


class AuditUnavailable(GateError):
    """The audit record could not be made durable, so no decision is returned."""

    code = "audit_unavailable"


class NotReady(GateError):
    """The service cannot decide yet (no active bundle, audit not writable)."""

    code = "not_ready"
