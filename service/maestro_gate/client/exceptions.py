"""What the client raises: one tree, every error code the gate's API documents, and the guard's.

GateClientError
├── GateUnavailable            the gate could not be asked or gave no usable answer (fail closed)
│   ├── GateUnreachable        connection refused, reset, DNS, TLS
│   ├── GateTimeout            no answer within the call's timeout
│   ├── GateServerError        5xx without a documented code (`internal_error`, a proxy's 502)
│   └── MalformedAnswer        not JSON, not the documented shape, an unknown decision value
└── GateRefused                the gate answered with a documented error code (`code`, `status`)
    ├── InvalidRequest         invalid_parameter 400 (and: request_too_deep, request_too_complex,
    │                          duplicate_key 400, request_too_large 413, unsupported_media_type
    │                          415, invalid_request 422)
    ├── Unauthorized           unauthorized 401
    ├── Forbidden              forbidden 403 (and: subject_not_bound, self_approval)
    ├── NotFound               resource_not_found 404, method_not_allowed 405
    ├── Conflict               resource_conflict 409 (and: already_voted, approval_closed,
    │                          request_id_reused: a request_id sent again with another request)
    ├── BundleRefused          bundle_error 422
    ├── CallerOverloaded       caller_overloaded 429 (`retry_after_s`)
    └── ServiceUnavailable     not_ready, audit_unavailable, engine_error 503

ActionDenied (the guard: the call did not run)
├── ApprovalRefused            the approval was rejected, expired, used or did not match
├── ApprovalTimeout            no approver decided before the guard's deadline
└── ObligationsUnhandled       the gate set obligations and nobody was given them

None of these is ever turned into an allow: a caller that catches GateClientError and proceeds
has chosen to fail open itself.
"""

from __future__ import annotations

from typing import Any

from maestro_gate.core.decision.decisions import DecisionResponse, Reason


class GateClientError(Exception):
    """Base of everything the client raises about the gate itself."""


class GateUnavailable(GateClientError):
    """No usable answer: treat as deny."""


class GateUnreachable(GateUnavailable):
    """The gate could not be reached (connection refused or reset, name or TLS failure)."""


class GateTimeout(GateUnavailable):
    """The gate did not answer within the call's timeout."""


class GateServerError(GateUnavailable):
    """A 5xx the API does not document by code (an internal error, a proxy in between)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class MalformedAnswer(GateUnavailable):
    """The answer is not the documented shape: not JSON, a wrong field, an unknown decision."""


class GateRefused(GateClientError):
    """The gate answered with a documented error: `status`, a stable `code`, a `message`."""

    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int = 0,
        errors: list[dict[str, Any]] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code or self.code}: {message}")
        self.code = code or self.code
        self.message = message
        self.status = status
        self.errors = errors or []
        self.retry_after_s = retry_after_s


class InvalidRequest(GateRefused):
    """The request was refused as malformed (400, 413, 415 or 422)."""

    code = "invalid_parameter"


class Unauthorized(GateRefused):
    """No valid credential was presented (401)."""

    code = "unauthorized"


class Forbidden(GateRefused):
    """The credential may not do this (403), e.g. decide for a subject it is not bound to."""

    code = "forbidden"


class NotFound(GateRefused):
    """No such resource (404), or no such method on it (405)."""

    code = "resource_not_found"


class Conflict(GateRefused):
    """The resource's state conflicts with the request (409)."""

    code = "resource_conflict"


class BundleRefused(GateRefused):
    """A bundle reload was refused; the active bundle stays (422)."""

    code = "bundle_error"


class CallerOverloaded(GateRefused):
    """This caller holds all the engine work it may (429); `retry_after_s` says when to retry."""

    code = "caller_overloaded"


class ServiceUnavailable(GateRefused, GateUnavailable):
    """The gate cannot decide now (503): not ready, audit unavailable, engine unreachable."""

    code = "not_ready"


ERROR_CODES: dict[str, type[GateRefused]] = {
    "invalid_parameter": InvalidRequest,
    "request_too_large": InvalidRequest,
    "request_too_deep": InvalidRequest,
    "request_too_complex": InvalidRequest,
    "duplicate_key": InvalidRequest,
    "unsupported_media_type": InvalidRequest,
    "invalid_request": InvalidRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "subject_not_bound": Forbidden,
    "self_approval": Forbidden,
    "resource_not_found": NotFound,
    "method_not_allowed": NotFound,
    "resource_conflict": Conflict,
    "already_voted": Conflict,
    "approval_closed": Conflict,
    "request_id_reused": Conflict,
    "bundle_error": BundleRefused,
    "caller_overloaded": CallerOverloaded,
    "not_ready": ServiceUnavailable,
    "audit_unavailable": ServiceUnavailable,
    "engine_error": ServiceUnavailable,
}
"""Every error code the API documents, to the class raised for it."""


class ActionDenied(Exception):
    """The guarded call did not run: the gate denied it, or its approval did not come through.

    `reasons` are the gate's (rule, layer, threats, message); `decision` is the answer, when
    there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        reasons: list[Reason] | None = None,
        decision: DecisionResponse | None = None,
    ) -> None:
        self.reasons = list(
            reasons if reasons is not None else decision.reasons if decision else []
        )
        self.decision = decision
        listed = "; ".join(f"{r.rule}: {r.message}" for r in self.reasons)
        super().__init__(f"{message} ({listed})" if listed else message)


class ApprovalRefused(ActionDenied):
    """The approval was rejected, expired, already used or does not match this call."""


class ApprovalTimeout(ActionDenied):
    """No approver decided before the guard's deadline; the call did not run."""


class ObligationsUnhandled(ActionDenied):
    """The gate allowed with obligations, and the guard was given no one to hand them to."""
