"""The fail-safes the gate applies to a policy's result, whatever the bundle says.

An emergency stop of an agent or agent class denies (`L6.emergency_stop`); a state store that
could not be read denies (`GATE.state_unavailable`); an approval id that is rejected, expired,
used or does not match the request denies (`GATE.approval_<status>`). A granted approval that
covers every reason a `require_hitl` gave, with enough approvers, turns it into an allow.
"""

from __future__ import annotations

from collections.abc import Callable

from maestro_gate.core.decision.approvals import UNUSABLE, Approval, Status
from maestro_gate.core.decision.controls import Controls, stop_reasons
from maestro_gate.core.decision.decisions import PolicyResult, Reason, Verdict, gate_reason
from maestro_gate.core.decision.requests import AnyRequest, DataMovement, Delegation


def fail_safes(
    result: PolicyResult,
    request: AnyRequest,
    controls: Controls,
    agent_class: Callable[[str], str | None] | None,
    state_error: str | None,
    held: Approval | None,
    status: Status | None,
) -> PolicyResult:
    """`result` after the fail-safes: forced denies first, then a granted approval's allow."""
    forced: list[Reason] = []
    if controls.agents or controls.classes:
        actors = _actors(request)
        classes = {a: agent_class(a) for a in actors} if agent_class else {}
        forced += stop_reasons(controls, actors, classes)
    if state_error is not None:
        forced.append(gate_reason("state_unavailable", state_error, ["T4"]))
    if status in UNUSABLE:
        forced.append(
            gate_reason(
                f"approval_{status}",
                f"approval {request.approval_id} is {status}; it cannot authorise this request",
                ["T7"],
            )
        )
    if forced:
        layers = dict(result.layers)
        for reason in forced:
            if reason.layer != "gate":
                layers[reason.layer] = "deny"
        kept = result.reasons if result.decision == "deny" else []
        return result.model_copy(
            update={"decision": "deny", "reasons": [*forced, *kept], "layers": layers}
        )
    if status == "granted" and held is not None and result.decision == "require_hitl":
        covered = {r.rule for r in result.reasons} <= set(held.rules)
        if covered and held.approvals >= held.approvers_required:
            layers = {k: _cleared(v) for k, v in result.layers.items()}
            return result.model_copy(update={"decision": "allow", "reasons": [], "layers": layers})
    return result


def _actors(request: AnyRequest) -> list[str]:
    """The agents a request involves: the subject, a delegatee, a receiving agent."""
    actors = [request.subject.id]
    if isinstance(request, Delegation):
        actors.append(request.delegatee)
    elif isinstance(request, DataMovement) and request.destination.type == "agent":
        actors.append(request.destination.id)
    return actors


def _cleared(verdict: Verdict) -> Verdict:
    return "allow" if verdict == "require_hitl" else verdict
