"""The DecisionPoint: build the Rego input, evaluate, check, audit, and only then answer.

Fail closed: an engine error, a timeout, a missing bundle or a malformed policy result is a deny
with a `GATE.*` reason; an audit append that fails raises `AuditUnavailable`, so no decision,
and above all no allow, leaves without a durable record.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from maestro_gate.core.chain import canonical, sha256_hex
from maestro_gate.core.decisions import (
    AuditRef,
    DecisionResponse,
    Mode,
    PolicyRef,
    PolicyResult,
    check_policy_result,
    gate_reason,
)
from maestro_gate.core.errors import (
    AuditUnavailable,
    EngineError,
    EngineTimeout,
    InvalidRequest,
    NotReady,
)
from maestro_gate.core.ports import AuditLog, BundleInfo, DecisionMetrics, PolicyEngine
from maestro_gate.core.records import decision_record, mask
from maestro_gate.core.requests import AgentAction, DataMovement, Delegation

AnyRequest = AgentAction | DataMovement | Delegation


class StateSource(Protocol):
    """Supplies `input.state` (counters, session history, stops) and learns each outcome."""

    async def snapshot(self, request: AnyRequest) -> dict[str, Any]:
        """The state document the policy sees for this request."""
        ...

    async def observe(self, request: AnyRequest, decision: str) -> None:
        """Record that this request was decided (for rates and session history)."""
        ...


class DecisionPoint:
    """Decides requests against the active bundle and audits each decision before returning it."""

    def __init__(
        self,
        engine: PolicyEngine,
        audit: AuditLog,
        metrics: DecisionMetrics,
        *,
        timeout_s: float = 0.25,
        mode: Mode = "enforce",
        mask_pointers: list[str] | None = None,
        state: StateSource | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.mode: Mode = mode
        self.mask_pointers = mask_pointers or []
        self.state = state
        self._log = structlog.get_logger("maestro_gate.decision")

    async def decide(self, request: AnyRequest) -> DecisionResponse:
        """Decide one request; raise InvalidRequest or AuditUnavailable, never allow on error."""
        started = time.perf_counter()
        decision_id = str(uuid.uuid4())
        document = request.model_dump(mode="json", exclude_none=True)
        try:
            input_sha256 = sha256_hex(canonical(document))
        except ValueError as exc:
            raise InvalidRequest(
                f"request cannot be canonicalised for the audit log: {exc}"
            ) from exc
        state = await self.state.snapshot(request) if self.state else {}
        result, policy = await self._evaluate({**document, "state": state})
        evaluated = result.decision
        answered = "allow" if self.mode == "shadow" else evaluated
        result_doc = result.model_dump(mode="json")
        record = decision_record(
            decision_id=decision_id,
            timestamp=datetime.now(UTC).isoformat(timespec="microseconds"),
            kind=request.kind,
            subject=request.subject.id,
            decision=evaluated,
            result=result_doc,
            policy=policy.model_dump(mode="json", exclude_none=True),
            mode=self.mode,
            approval=None,
            masked_input=mask(document, self.mask_pointers),
            input_sha256=input_sha256,
            trace_id=request.context.trace_id,
        )
        receipt = await self._append(record, decision_id)
        if self.state:
            await self.state.observe(request, evaluated)
        seconds = time.perf_counter() - started
        rules = record["rules"]
        self.metrics.decision(request.kind, evaluated, self.mode, seconds, rules, result.layers)
        self._log.info(
            "decision",
            decision_id=decision_id,
            trace_id=request.context.trace_id,
            kind=request.kind,
            decision=evaluated,
            mode=self.mode,
            rules=rules,
            latency_ms=round(seconds * 1000, 3),
            audit_index=receipt.index,
        )
        return DecisionResponse(
            decision_id=decision_id,
            decision=answered,
            reasons=result.reasons,
            obligations=result.obligations,
            layers=result.layers,
            policy=policy,
            audit=AuditRef(index=receipt.index, leaf_hash=receipt.leaf_hash),
            mode=self.mode,
            evaluated_decision=evaluated if self.mode == "shadow" else None,
        )

    async def _evaluate(self, document: dict[str, Any]) -> tuple[PolicyResult, PolicyRef]:
        engine = self.engine.name
        started = time.perf_counter()
        error: str | None = None
        try:
            raw = await self.engine.evaluate(document, self.timeout_s)
            result = check_policy_result(raw.value)
            policy = _policy_ref(raw.bundle, engine, raw.engine_decision_id)
        except EngineTimeout as exc:
            error = "timeout"
            result = _deny("engine_timeout", exc.message)
        except NotReady as exc:
            error = "no_bundle"
            result = _deny("no_active_bundle", exc.message)
        except EngineError as exc:
            error = "error"
            result = _deny("engine_error", exc.message)
        except Exception as exc:
            error = "error"
            result = _deny("engine_error", f"unexpected engine failure: {type(exc).__name__}")
        if error is not None:
            policy = _policy_ref(self.engine.active_bundle(), engine, None)
        self.metrics.engine(engine, time.perf_counter() - started, error)
        return result, policy

    async def _append(self, record: dict[str, Any], decision_id: str) -> Any:
        started = time.perf_counter()
        try:
            receipt = await self.audit.append(record)
        except Exception as exc:
            self.metrics.audit_append(time.perf_counter() - started, failed=True)
            self._log.error("audit_append_failed", decision_id=decision_id, error=str(exc))
            raise AuditUnavailable(
                "the decision could not be written to the audit log; nothing was decided"
            ) from exc
        self.metrics.audit_append(time.perf_counter() - started, failed=False)
        return receipt


def _deny(rule: str, message: str) -> PolicyResult:
    return PolicyResult(decision="deny", reasons=[gate_reason(rule, message, ["T24"])])


def _policy_ref(
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
