"""The DecisionPoint: build the Rego input, evaluate, check, audit, and only then answer.

Fail closed: an engine error, a timeout, a missing bundle, a malformed policy result or an
unreadable state store is a deny with a `GATE.*` reason; an audit append that fails raises
`AuditUnavailable`, so no decision, and above all no allow, leaves without a durable record.
The fail-safes of `core/failsafes.py` act on the policy's result whatever the bundle says
(emergency stop, unreadable state, an unusable approval), and a granted approval is consumed
exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from maestro_gate.core.admission import Admission, Slot, check_weight
from maestro_gate.core.approvals import (
    UNUSABLE,
    Approval,
    ApprovalStore,
    Status,
    action_digest,
    public_view,
)
from maestro_gate.core.budgets import Reservation, request_cost
from maestro_gate.core.callers import Caller
from maestro_gate.core.chain import canonical, sha256_hex
from maestro_gate.core.clock import iso_microseconds
from maestro_gate.core.controls import Controls, answered
from maestro_gate.core.decisions import (
    ApprovalTicket,
    AuditRef,
    DecisionResponse,
    Mode,
    PolicyRef,
    PolicyResult,
    check_policy_result,
    gate_deny,
    policy_ref,
)
from maestro_gate.core.errors import (
    AuditUnavailable,
    EngineError,
    EngineTimeout,
    InvalidRequest,
    NotReady,
)
from maestro_gate.core.failsafes import fail_safes
from maestro_gate.core.ports import (
    AuditLog,
    AuditReceipt,
    DecisionMetrics,
    PolicyEngine,
    StateSource,
    empty_state,
)
from maestro_gate.core.records import decision_record, event_record, mask, mask_state
from maestro_gate.core.requests import AnyRequest


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
        approvals: ApprovalStore | None = None,
        approval_ttl_s: int = 3600,
        controls: Controls | None = None,
        agent_class: Callable[[str], str | None] | None = None,
        admission: Admission | None = None,
        max_weight: int | None = None,
        tool_cost: Callable[[str], object] | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.controls = controls or Controls(mode=mode)
        self.mask_pointers = mask_pointers or []
        self.state = state
        self.approvals = approvals
        self.approval_ttl_s = approval_ttl_s
        self.agent_class = agent_class
        self.admission = admission
        self.max_weight = max_weight
        self.tool_cost = tool_cost
        self._log = structlog.get_logger("maestro_gate.decision")

    @property
    def mode(self) -> Mode:
        """The global enforcement mode in force."""
        return self.controls.mode

    async def decide(
        self, request: AnyRequest, caller: Caller | None = None, *, received: float | None = None
    ) -> DecisionResponse:
        """Decide one request; raise InvalidRequest or AuditUnavailable, never allow on error.

        The deadline runs from `received` (a `time.perf_counter()` reading taken when the request
        arrived) when given: the time spent reading and preparing it is the evaluation's less.
        """
        started = time.perf_counter() if received is None else received
        if self.max_weight is not None:
            check_weight(request, self.max_weight)
        document = request.model_dump(mode="json", exclude_none=True)
        try:
            input_sha256 = sha256_hex(canonical(document))
        except ValueError as exc:
            raise InvalidRequest(
                f"request cannot be canonicalised for the audit log: {exc}"
            ) from exc
        cost = request_cost(request, self.tool_cost)
        if self.state is None or cost <= 0:
            return await self._decide(request, caller, document, input_sha256, started, None)
        reservation = self.state.reservation(request, cost)
        try:
            return await self._decide(request, caller, document, input_sha256, started, reservation)
        except BaseException:
            # No decision left (audit failure, error, cancellation): nothing is spent. A
            # release after `observe` settled the reservation is a no-op.
            await self._give_back(reservation)
            raise

    async def _decide(
        self,
        request: AnyRequest,
        caller: Caller | None,
        document: dict[str, Any],
        input_sha256: str,
        started: float,
        reservation: Reservation | None,
    ) -> DecisionResponse:
        decision_id = str(uuid.uuid4())
        controls = self.controls
        now_ms = time.time_ns() // 1_000_000
        state, state_error = await self._snapshot(request, reservation)
        state["now_ns"] = time.time_ns()
        state["pending_approvals"] = self.approvals.pending() if self.approvals else 0
        state["emergency_stop"] = controls.state()
        if caller is not None:
            state["caller"] = caller.state(request.subject.id)
        digest: str | None = None
        held: Approval | None = None
        status: Status | None = None
        if request.approval_id is not None:
            digest = action_digest(document)
            held, status = await self._approval_status(request.approval_id, digest, now_ms)
            state["approval"] = {
                "id": request.approval_id,
                "status": status,
                "approvals": held.approvals if held else 0,
            }
        slot = self.admission.enter(caller.principal) if self.admission and caller else None
        left = self.timeout_s - (time.perf_counter() - started)
        result, policy = await self._evaluate({**document, "state": state}, slot, left)
        result = fail_safes(result, request, controls, self.agent_class, state_error, held, status)
        event: str | None = None
        if status in UNUSABLE:
            event = "expired" if status == "expired" else "refused"
        elif status == "granted" and held and digest and result.decision == "allow":
            if await self._consume(held, digest, policy.revision, decision_id, now_ms):
                event = "used"
            else:
                status, event = "used", "refused"
                result = gate_deny("approval_used", "the approval was already used", ["T7"])
        answer = answered(result, controls)
        ticket = None
        if answer == "require_hitl":
            if status == "pending" and held is not None:
                ticket = _ticket(held)
            else:
                held = await self._open(request, document, result, policy, decision_id, caller)
                event = "created"
                ticket = _ticket(held)
        evaluated = result.decision
        approval_ref = None
        if held is not None or request.approval_id is not None:
            approval_ref = {
                "id": held.id if held else request.approval_id,
                "status": status or "pending",
                "event": event,
            }
        record = decision_record(
            decision_id=decision_id,
            timestamp=iso_microseconds(time.time_ns()),
            kind=request.kind,
            subject=request.subject.id,
            decision=evaluated,
            result=result.model_dump(mode="json"),
            policy=policy.model_dump(mode="json", exclude_none=True),
            mode=controls.mode,
            approval=approval_ref,
            masked_input=mask(document, self.mask_pointers),
            input_sha256=input_sha256,
            trace_id=request.context.trace_id,
            state=mask_state(state, self.mask_pointers),
        )
        if controls.shadow_layers:
            record["shadow_layers"] = sorted(controls.shadow_layers)
        try:
            receipt = await self._append(record, decision_id)
        except AuditUnavailable:
            if event == "used" and held is not None and self.approvals is not None:
                await self._release(held.id, decision_id)
            raise
        if event is not None:
            await self._approval_event(event, status, held, request, decision_id, now_ms)
        if self.state:
            await self._observe(request, evaluated, reservation)
        seconds = time.perf_counter() - started
        rules = record["rules"]
        self.metrics.decision(request.kind, evaluated, controls.mode, seconds, rules, result.layers)
        self._log.info(
            "decision",
            decision_id=decision_id,
            trace_id=request.context.trace_id,
            kind=request.kind,
            decision=evaluated,
            answer=answer,
            mode=controls.mode,
            rules=rules,
            latency_ms=round(seconds * 1000, 3),
            audit_index=receipt.index,
        )
        return DecisionResponse(
            decision_id=decision_id,
            decision=answer,
            reasons=result.reasons,
            obligations=result.obligations,
            layers=result.layers,
            approval=ticket,
            policy=policy,
            audit=AuditRef(index=receipt.index, leaf_hash=receipt.leaf_hash),
            mode=controls.mode,
            evaluated_decision=(
                evaluated if controls.mode == "shadow" or answer != evaluated else None
            ),
        )

    async def _snapshot(
        self, request: AnyRequest, reservation: Reservation | None
    ) -> tuple[dict[str, Any], str | None]:
        if self.state is None:
            return empty_state(), None
        try:
            async with asyncio.timeout(self.timeout_s):
                snap = await self.state.snapshot(request, reservation)
        except Exception as exc:
            self._log.error("state_snapshot_failed", error=f"{type(exc).__name__}: {exc}")
            return empty_state(), f"the state store could not be read: {type(exc).__name__}"
        return dict(snap), None

    async def _observe(
        self, request: AnyRequest, decision: str, reservation: Reservation | None
    ) -> None:
        assert self.state is not None
        try:
            async with asyncio.timeout(self.timeout_s * 4):
                await self.state.observe(request, decision, reservation)
        except Exception as exc:
            # The decision is audited already; adapters count their own failures in metrics.
            self._log.error("state_observe_failed", error=f"{type(exc).__name__}: {exc}")

    async def _give_back(self, reservation: Reservation) -> None:
        """Release a reservation whose request was not decided; a failing store keeps it held
        (an over-count until the period ends, never an overdraw)."""
        assert self.state is not None
        try:
            async with asyncio.timeout(self.timeout_s * 4):
                await asyncio.shield(self.state.release(reservation))
        except Exception as exc:
            self._log.error("budget_not_released", agent=reservation.agent, error=str(exc))

    async def _approval_status(
        self, approval_id: str, digest: str, now_ms: int
    ) -> tuple[Approval | None, Status]:
        if self.approvals is None:
            return None, "mismatch"
        held = await self.approvals.get(approval_id)
        if held is None:
            return None, "mismatch"
        bundle = self.engine.active_bundle()
        return held, held.status_for(digest, bundle.revision if bundle else None, now_ms)

    async def _consume(
        self, held: Approval, digest: str, revision: str, decision_id: str, now_ms: int
    ) -> bool:
        assert self.approvals is not None
        return await self.approvals.consume(held.id, digest, revision, decision_id, now_ms)

    async def _release(self, approval_id: str, decision_id: str) -> None:
        """An approval consumed for a decision that was not recorded is granted again."""
        assert self.approvals is not None
        try:
            await self.approvals.release(approval_id, decision_id)
        except Exception as exc:  # the store is failing too: the use stays, and says so
            self._log.error("approval_not_released", approval_id=approval_id, error=str(exc))

    async def _open(
        self,
        request: AnyRequest,
        document: dict[str, Any],
        result: PolicyResult,
        policy: PolicyRef,
        decision_id: str,
        caller: Caller | None,
    ) -> Approval:
        if self.approvals is None:
            raise AuditUnavailable("no approval store is configured; a human cannot be asked")
        required = max([1, result.approvers_required, *(r.approvers or 1 for r in result.reasons)])
        now_ms = time.time_ns() // 1_000_000
        approval = Approval(
            id=str(uuid.uuid4()),
            digest=action_digest(document),
            subject=request.subject.id,
            requested_by=caller.principal if caller else None,
            kind=request.kind,
            summary={
                "request": mask(document, self.mask_pointers),
                "reasons": [r.model_dump(mode="json", exclude_none=True) for r in result.reasons],
            },
            bundle_revision=policy.revision,
            bundle_digest=policy.digest,
            rules=sorted({r.rule for r in result.reasons}),
            approvers_required=required,
            status="pending",
            created_at_ms=now_ms,
            expires_at_ms=now_ms + self.approval_ttl_s * 1000,
            decision_id=decision_id,
        )
        try:
            await self.approvals.create(approval)
        except Exception as exc:
            self._log.error("approval_create_failed", decision_id=decision_id, error=str(exc))
            raise AuditUnavailable("the approval could not be stored; nothing was decided") from exc
        return approval

    async def _approval_event(
        self,
        event: str,
        status: Status | None,
        held: Approval | None,
        request: AnyRequest,
        decision_id: str,
        now_ms: int,
    ) -> None:
        detail: dict[str, Any] = {
            "approval_id": held.id if held else request.approval_id,
            "decision_id": decision_id,
            "seen_status": status,
        }
        if held is not None:
            fresh = await self.approvals.get(held.id) if self.approvals else None
            detail = {**public_view(fresh or held, now_ms), **detail}
        await self.event(f"approval_{event}", request.subject.id, detail)

    async def event(self, type: str, subject: str | None, detail: dict[str, Any]) -> AuditReceipt:
        """Append a non-decision event record (approvals, admin changes, refused callers)."""
        record = event_record(
            event_id=str(uuid.uuid4()),
            timestamp=iso_microseconds(time.time_ns()),
            type=type,
            subject=subject,
            detail=detail,
        )
        return await self._append(record, record["decision_id"])

    async def _evaluate(
        self, document: dict[str, Any], slot: Slot | None, timeout_s: float
    ) -> tuple[PolicyResult, PolicyRef]:
        engine = self.engine.name
        started = time.perf_counter()
        error: str | None = None
        try:
            if timeout_s <= 0:
                raise EngineTimeout("the request spent its deadline before it could be evaluated")
            raw = await self.engine.evaluate(document, timeout_s)
            result = check_policy_result(raw.value)
            policy = policy_ref(raw.bundle, engine, raw.engine_decision_id)
        except EngineTimeout as exc:
            error = "timeout"
            result = gate_deny("engine_timeout", exc.message)
            if slot is not None and exc.settled is not None:
                slot.hold(exc.settled)  # the caller's worker stays busy until it ends
        except NotReady as exc:
            error = "no_bundle"
            result = gate_deny("no_active_bundle", exc.message)
        except EngineError as exc:
            error = "error"
            result = gate_deny("engine_error", exc.message)
        except Exception as exc:
            error = "error"
            result = gate_deny("engine_error", f"unexpected engine failure: {type(exc).__name__}")
        finally:
            if slot is not None:
                slot.release()  # unless held above
        if error is not None:
            policy = policy_ref(self.engine.active_bundle(), engine, None)
        self.metrics.engine(engine, time.perf_counter() - started, error)
        return result, policy

    async def _append(self, record: dict[str, Any], decision_id: str) -> AuditReceipt:
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


def _ticket(approval: Approval) -> ApprovalTicket:
    return ApprovalTicket(
        id=approval.id,
        approvers_required=approval.approvers_required,
        expires_at=datetime.fromtimestamp(approval.expires_at_ms / 1000, UTC).isoformat(
            timespec="milliseconds"
        ),
        status="pending",
        approvals=approval.approvals,
    )
