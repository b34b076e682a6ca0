"""The DecisionPoint: build the Rego input, evaluate, check, audit, and only then answer.

Fail closed: an engine error, a timeout, a missing bundle, a malformed policy result or an
unreadable state store is a deny with a `GATE.*` reason; an audit append that fails raises
`AuditUnavailable`, so no decision, and above all no allow, leaves without a durable record.
The fail-safes of `core/decision/failsafes.py` act on the policy's result whatever the bundle says
(emergency stop, unreadable state, an unusable approval), and a granted approval is consumed
exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from maestro_gate.core.clock import iso_microseconds
from maestro_gate.core.decision.admission import Admission, Slot, check_weight
from maestro_gate.core.decision.approvals import (
    UNUSABLE,
    Approval,
    ApprovalStore,
    Status,
    action_digest,
    public_view,
    ticket_of,
)
from maestro_gate.core.decision.budgets import Reservation, request_cost
from maestro_gate.core.decision.callers import Caller
from maestro_gate.core.decision.controls import Controls, answered
from maestro_gate.core.decision.decisions import (
    ApprovalTicket,
    AuditRef,
    DecisionResponse,
    Mode,
    PolicyRef,
    PolicyResult,
    Verdict,
    check_policy_result,
    gate_deny,
    policy_ref,
)
from maestro_gate.core.decision.failsafes import fail_safes
from maestro_gate.core.decision.ports import (
    AuditLog,
    AuditReceipt,
    DecisionMetrics,
    PolicyEngine,
    StateSource,
    empty_state,
)
from maestro_gate.core.decision.recorder import AuditRecorder
from maestro_gate.core.decision.requests import AgentAction, AnyRequest
from maestro_gate.core.errors import (
    AuditUnavailable,
    EngineError,
    EngineTimeout,
    InvalidRequest,
    NotReady,
)
from maestro_gate.core.ledger.chain import canonical, sha256_hex
from maestro_gate.core.ledger.records import decision_record, mask, mask_state


@dataclass(slots=True)
class Asked:
    """One request on its way through the steps: what was asked, by whom, and since when."""

    request: AnyRequest
    caller: Caller | None
    document: dict[str, Any]
    input_sha256: str
    started: float
    reservation: Reservation | None
    decision_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    controls: Controls = field(default_factory=Controls)
    now_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


@dataclass(slots=True)
class Gathered:
    """The state the policy sees, and the approval the request names (if it names one)."""

    state: dict[str, Any]
    state_error: str | None = None
    digest: str | None = None
    held: Approval | None = None
    status: Status | None = None


@dataclass(slots=True)
class Settled:
    """The result after the approval is settled: what to answer, and what to record of it."""

    result: PolicyResult
    answer: Verdict
    held: Approval | None
    status: Status | None
    event: str | None
    ticket: ApprovalTicket | None = None


class DecisionPoint:
    """Decides requests against the active bundle and audits each decision before returning it.

    `decide` runs six steps, each a method of its own: `gather_state`, `evaluate`,
    `apply_safeguards`, `settle_approval`, `record` and `answer`.
    """

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
        record_state: bool = True,
        argument_check: Callable[[str, Any], dict[str, Any] | None] | None = None,
    ) -> None:
        self.engine = engine
        self.record_state = record_state
        self.recorder = AuditRecorder(audit, metrics)
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._controls = controls or Controls(mode=mode)
        self.mask_pointers = mask_pointers or []
        self.state = state
        self.approvals = approvals
        self.approval_ttl_s = approval_ttl_s
        self.agent_class = agent_class
        self.admission = admission
        self.max_weight = max_weight
        self.tool_cost = tool_cost
        self.argument_check = argument_check
        self._log = structlog.get_logger("maestro_gate.decision")

    @property
    def controls(self) -> Controls:
        """The mode and emergency stops in force."""
        return self._controls

    def apply_controls(self, controls: Controls) -> None:
        """Put new controls in force for every later decision (replaced whole, never locked)."""
        self._controls = controls

    @property
    def mode(self) -> Mode:
        """The global enforcement mode in force."""
        return self._controls.mode

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
            asked = Asked(request, caller, document, input_sha256, started, None)
            return await self._steps(asked)
        reservation = self.state.reservation(request, cost)
        try:
            asked = Asked(request, caller, document, input_sha256, started, reservation)
            return await self._steps(asked)
        except BaseException:
            # No decision left (audit failure, error, cancellation): nothing is spent. A
            # release after `observe` settled the reservation is a no-op.
            await self._give_back(reservation)
            raise

    async def _steps(self, asked: Asked) -> DecisionResponse:
        asked.controls = self._controls  # one set of controls for the whole decision
        gathered = await self.gather_state(asked)
        result, policy = await self.evaluate(asked, gathered)
        result = self.apply_safeguards(asked, gathered, result)
        settled = await self.settle_approval(asked, gathered, result, policy)
        recorded = gathered.state if self.record_state else None  # schema 2, or 1
        receipt = await self.record(asked, settled, policy, recorded)
        return self.answer(asked, settled, policy, receipt)

    async def gather_state(self, asked: Asked) -> Gathered:
        """`input.state`: the state source's snapshot, the gate's own counters and controls,
        the caller, and the status of the approval the request names."""
        request, caller = asked.request, asked.caller
        state, state_error = await self._snapshot(request, asked.reservation)
        state["now_ns"] = time.time_ns()
        state["pending_approvals"] = self.approvals.pending() if self.approvals else 0
        state["emergency_stop"] = asked.controls.state()
        if caller is not None:
            state["caller"] = caller.state(request.subject.id)
        if self.argument_check is not None and isinstance(request, AgentAction):
            checked = self.argument_check(request.action, asked.document.get("arguments", {}))
            if checked is not None:
                state["arguments"] = checked
        gathered = Gathered(state, state_error)
        if request.approval_id is not None:
            gathered.digest = action_digest(asked.document)
            gathered.held, gathered.status = await self._approval_status(
                request.approval_id, gathered.digest, asked.now_ms
            )
            state["approval"] = {
                "id": request.approval_id,
                "status": gathered.status,
                "approvals": gathered.held.approvals if gathered.held else 0,
            }
        return gathered

    async def evaluate(self, asked: Asked, gathered: Gathered) -> tuple[PolicyResult, PolicyRef]:
        """The policy's result within what is left of the deadline, holding an admission slot;
        any engine failure is a `GATE.*` deny."""
        caller = asked.caller
        slot = self.admission.enter(caller.principal) if self.admission and caller else None
        left = self.timeout_s - (time.perf_counter() - asked.started)
        return await self._evaluate({**asked.document, "state": gathered.state}, slot, left)

    def apply_safeguards(
        self, asked: Asked, gathered: Gathered, result: PolicyResult
    ) -> PolicyResult:
        """The result after the fail-safes (decision/failsafes.py), whatever the bundle said."""
        return fail_safes(
            result,
            asked.request,
            asked.controls,
            self.agent_class,
            gathered.state_error,
            gathered.held,
            gathered.status,
        )

    async def settle_approval(
        self, asked: Asked, gathered: Gathered, result: PolicyResult, policy: PolicyRef
    ) -> Settled:
        """Consume a granted approval that allows, open one when a human must decide, and say
        what the caller is told under the controls in force."""
        held, status, digest = gathered.held, gathered.status, gathered.digest
        event: str | None = None
        if status in UNUSABLE:
            event = "expired" if status == "expired" else "refused"
        elif status == "granted" and held and digest and result.decision == "allow":
            if await self._consume(held, digest, policy.revision, asked.decision_id, asked.now_ms):
                event = "used"
            else:
                status, event = "used", "refused"
                result = gate_deny("approval_used", "the approval was already used", ["T7"])
        settled = Settled(result, answered(result, asked.controls), held, status, event)
        if settled.answer == "require_hitl":
            if status == "pending" and held is not None:
                settled.ticket = ticket_of(held)
            else:
                settled.held = await self._open(asked, result, policy)
                settled.event = "created"
                settled.ticket = ticket_of(settled.held)
        return settled

    async def record(
        self, asked: Asked, settled: Settled, policy: PolicyRef, state: dict[str, Any] | None = None
    ) -> AuditReceipt:
        """Append the decision record durably, then the approval event and the state update.

        An approval consumed for a decision that could not be recorded is granted again.
        """
        record = self._decision_record(asked, settled, policy, state)
        try:
            receipt = await self.recorder.append(record, asked.decision_id)
        except AuditUnavailable:
            if settled.event == "used" and settled.held is not None and self.approvals is not None:
                await self._release(settled.held.id, asked.decision_id)
            raise
        if settled.event is not None:
            await self._approval_event(asked, settled)
        if self.state:
            await self._observe(asked.request, settled.result.decision, asked.reservation)
        return receipt

    def answer(
        self, asked: Asked, settled: Settled, policy: PolicyRef, receipt: AuditReceipt
    ) -> DecisionResponse:
        """Count and log the decision, and the response the caller gets."""
        request, controls, result = asked.request, asked.controls, settled.result
        evaluated, answer = result.decision, settled.answer
        seconds = time.perf_counter() - asked.started
        rules = sorted({r.rule for r in result.reasons})
        self.metrics.decision(request.kind, evaluated, controls.mode, seconds, rules, result.layers)
        self._log.info(
            "decision",
            decision_id=asked.decision_id,
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
            decision_id=asked.decision_id,
            decision=answer,
            reasons=result.reasons,
            obligations=result.obligations,
            layers=result.layers,
            approval=settled.ticket,
            policy=policy,
            audit=AuditRef(index=receipt.index, leaf_hash=receipt.leaf_hash),
            mode=controls.mode,
            evaluated_decision=(
                evaluated if controls.mode == "shadow" or answer != evaluated else None
            ),
        )

    def _decision_record(
        self, asked: Asked, settled: Settled, policy: PolicyRef, state: dict[str, Any] | None
    ) -> dict[str, Any]:
        request, held = asked.request, settled.held
        approval_ref = None
        if held is not None or request.approval_id is not None:
            approval_ref = {
                "id": held.id if held else request.approval_id,
                "status": settled.status or "pending",
                "event": settled.event,
            }
        record = decision_record(
            decision_id=asked.decision_id,
            timestamp=iso_microseconds(time.time_ns()),
            kind=request.kind,
            subject=request.subject.id,
            decision=settled.result.decision,
            result=settled.result.model_dump(mode="json"),
            policy=policy.model_dump(mode="json", exclude_none=True),
            mode=asked.controls.mode,
            approval=approval_ref,
            masked_input=mask(asked.document, self.mask_pointers),
            input_sha256=asked.input_sha256,
            trace_id=request.context.trace_id,
            state=None if state is None else mask_state(state, self.mask_pointers),
        )
        if asked.controls.shadow_layers:
            record["shadow_layers"] = sorted(asked.controls.shadow_layers)
        return record

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

    async def _open(self, asked: Asked, result: PolicyResult, policy: PolicyRef) -> Approval:
        """A pending approval for this request; AuditUnavailable when it cannot be stored."""
        if self.approvals is None:
            raise AuditUnavailable("no approval store is configured; a human cannot be asked")
        request, caller = asked.request, asked.caller
        required = max([1, result.approvers_required, *(r.approvers or 1 for r in result.reasons)])
        now_ms = time.time_ns() // 1_000_000
        approval = Approval(
            id=str(uuid.uuid4()),
            digest=action_digest(asked.document),
            subject=request.subject.id,
            requested_by=caller.principal if caller else None,
            kind=request.kind,
            summary={
                "request": mask(asked.document, self.mask_pointers),
                "reasons": [r.model_dump(mode="json", exclude_none=True) for r in result.reasons],
            },
            bundle_revision=policy.revision,
            bundle_digest=policy.digest,
            rules=sorted({r.rule for r in result.reasons}),
            approvers_required=required,
            status="pending",
            created_at_ms=now_ms,
            expires_at_ms=now_ms + self.approval_ttl_s * 1000,
            decision_id=asked.decision_id,
        )
        try:
            await self.approvals.create(approval)
        except Exception as exc:
            self._log.error("approval_create_failed", decision_id=asked.decision_id, error=str(exc))
            raise AuditUnavailable("the approval could not be stored; nothing was decided") from exc
        return approval

    async def _approval_event(self, asked: Asked, settled: Settled) -> None:
        held, request = settled.held, asked.request
        detail: dict[str, Any] = {
            "approval_id": held.id if held else request.approval_id,
            "decision_id": asked.decision_id,
            "seen_status": settled.status,
        }
        if held is not None:
            fresh = await self.approvals.get(held.id) if self.approvals else None
            detail = {**public_view(fresh or held, asked.now_ms), **detail}
        await self.recorder.event(f"approval_{settled.event}", request.subject.id, detail)

    async def event(self, type: str, subject: str | None, detail: dict[str, Any]) -> AuditReceipt:
        """Append a non-decision event record (approvals, admin changes, refused callers)."""
        return await self.recorder.event(type, subject, detail)

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
