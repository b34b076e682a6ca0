"""The response contract of `POST /v1/decide` and the check of what a policy returned.

A policy result that does not have the documented shape is itself a reason to deny:
`check_policy_result` turns it into a deny with the `GATE.malformed_policy_result` rule.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maestro_gate.core.catalog.model import LayerId
from maestro_gate.core.decision.ports import BundleInfo

Verdict = Literal["allow", "deny", "require_hitl"]
Mode = Literal["enforce", "shadow"]
LAYERS: tuple[str, ...] = get_args(LayerId)
RULE_ID = re.compile(r"^(L[1-7]|CL|GATE)\.[a-z][a-z0-9_]*$")
THREAT_ID = re.compile(r"^T[1-9][0-9]?$")


class Wire(BaseModel):
    """Base for response models."""

    model_config = ConfigDict(extra="forbid")


class Reason(Wire):
    """Why a layer denied or escalated: a stable rule id, its layer and the MAESTRO threats."""

    rule: str = Field(pattern=RULE_ID.pattern, examples=["L3.tool_not_allowlisted"])
    layer: str
    threats: list[str] = Field(default_factory=list)
    message: str
    approvers: int | None = Field(None, ge=1, le=10, description="Approvers a hitl rule needs.")


class Obligation(Reason):
    """Something the caller must do if it proceeds (sandbox, redact, log)."""

    type: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class PolicyResult(Wire):
    """What `data.maestro.decision.result` must evaluate to."""

    decision: Verdict
    reasons: list[Reason] = Field(default_factory=list)
    obligations: list[Obligation] = Field(default_factory=list)
    layers: dict[str, Verdict] = Field(default_factory=dict)
    approvers_required: int = Field(0, ge=0, le=10)


class ApprovalTicket(Wire):
    """The human approval a `require_hitl` decision waits for."""

    id: str
    approvers_required: int
    expires_at: str
    status: str = "pending"
    approvals: int = Field(0, description="Distinct approvers who have approved so far.")


class PolicyRef(Wire):
    """Which bundle and engine decided."""

    revision: str
    digest: str
    engine: str
    engine_decision_id: str | None = None


class AuditRef(Wire):
    """Where the decision sits in the audit log."""

    index: int
    leaf_hash: str


class DecisionResponse(Wire):
    """The answer to `POST /v1/decide`."""

    decision_id: str
    decision: Verdict
    reasons: list[Reason]
    obligations: list[Obligation]
    layers: dict[str, Verdict]
    approval: ApprovalTicket | None = None
    policy: PolicyRef
    audit: AuditRef
    mode: Mode
    evaluated_decision: Verdict | None = Field(
        None, description="In shadow mode, what enforcement would have answered."
    )


def gate_reason(rule: str, message: str, threats: list[str] | None = None) -> Reason:
    """A reason the gate itself raises (engine failure, malformed policy output)."""
    return Reason(rule=f"GATE.{rule}", layer="gate", threats=threats or [], message=message)


def gate_deny(rule: str, message: str, threats: list[str] | None = None) -> PolicyResult:
    """A deny the gate decides itself: one `GATE.<rule>` reason, citing T24 unless told."""
    return PolicyResult(decision="deny", reasons=[gate_reason(rule, message, threats or ["T24"])])


def policy_ref(
    bundle: BundleInfo | None, engine: str, engine_decision_id: str | None = None
) -> PolicyRef:
    """Which bundle (revision and digest `none` when none is active) and engine decided.

    Without an engine decision id it depends on the bundle and engine alone, so it is built once
    and shared by every decision made with them: treat it as read-only.
    """
    if engine_decision_id is None:
        return _shared_policy_ref(bundle, engine)
    return _new_policy_ref(bundle, engine, engine_decision_id)


@functools.lru_cache(maxsize=8)
def _shared_policy_ref(bundle: BundleInfo | None, engine: str) -> PolicyRef:
    return _new_policy_ref(bundle, engine, None)


def _new_policy_ref(
    bundle: BundleInfo | None, engine: str, engine_decision_id: str | None
) -> PolicyRef:
    if bundle is None:
        return PolicyRef(revision="none", digest="none", engine=engine)
    return PolicyRef(
        revision=bundle.revision,
        digest=bundle.digest,
        engine=engine,
        engine_decision_id=engine_decision_id,
    )


def check_policy_result(raw: Any) -> PolicyResult:
    """Validate a policy's output; anything malformed or inconsistent becomes a deny."""
    try:
        result = PolicyResult.model_validate(raw)
    except ValidationError as exc:
        return _malformed(f"policy result has the wrong shape: {exc.error_count()} error(s)")
    if result.decision == "deny" and not result.reasons:
        return _malformed("policy denied without a reason")
    for reason in result.reasons:
        bad = [t for t in reason.threats if not THREAT_ID.match(t)]
        if bad:
            return _malformed(f"rule {reason.rule} cites malformed threat ids {bad}")
    return result


def _malformed(message: str) -> PolicyResult:
    return gate_deny("malformed_policy_result", message)
