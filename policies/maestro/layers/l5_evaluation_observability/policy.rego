# L5 Evaluation & Observability: attribution (a trace id on everything that changes state or
# touches sensitive data) and protection of the human-approval queue from overload.
package maestro.layers.l5_evaluation_observability

import rego.v1

import data.maestro.layers.cross_layer
import data.maestro.layers.l1_foundation_models as l1
import data.maestro.layers.l2_data_operations as l2
import data.maestro.layers.l3_agent_frameworks as l3
import data.maestro.layers.l4_deployment_infrastructure as l4
import data.maestro.layers.l6_security_compliance as l6
import data.maestro.layers.l7_agent_ecosystem as l7
import data.maestro.lib

layer := "l5_evaluation_observability"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# rego-cpp cost notes (regopy 1.5.2): every built-in call copies the VM state, so each rule body
# starts with its cheapest guard and requests where nothing fires stay off the built-ins.

# Requests whose effects must be attributable to a trace: anything with side effects, and
# anything touching data at or above the local-only classification or carrying personal data.
needs_trace contains "it has side effects" if lib.side_effecting

# (Some label ranks at or above the local-only one: lib.max_target_rank >= lib.local_only_rank
# without ranking anything when the target carries no label.)
needs_trace contains "it touches sensitive data" if {
	some c in lib.target_classifications
	lib.rank(c) >= lib.local_only_rank
}

needs_trace contains "it touches sensitive data" if lib.rank(input.data.classification) >= lib.local_only_rank

needs_trace contains "it carries personal data" if input.data.contains_pii == true

# METADATA
# title: Trace id required for attribution
# description: >-
#   A request with side effects or touching sensitive data carries no trace id, so its effects
#   could not be attributed to a workflow afterwards.
# custom:
#   rule: L5.trace_id_required
#   layer: l5_evaluation_observability
#   threats: [T8, T44]
#   mitigations: [output_provenance_tracking]
deny contains reason("L5.trace_id_required", ["T8", "T44"], msg) if {
	not input.context.trace_id # first: most requests carry one, and needs_trace costs built-ins
	some _ in needs_trace # rather than count(needs_trace) > 0: no built-in calls
	msg := sprintf("%s request from %s needs a trace id: %v", [input.kind, input.subject.id, sort([w | some w in needs_trace])])
}

default queue_limit := 50

queue_limit := lib.thresholds.approval_queue_limit

# Escalations raised by the other layers that a granted approval does not already cover.
open_escalations contains h if {
	some h in (((l1.hitl | l2.hitl) | (l3.hitl | l4.hitl)) | ((l6.hitl | l7.hitl) | cross_layer.hitl))
	not lib.satisfied(h)
}

# METADATA
# title: Approval queue overloaded
# description: >-
#   The request would wait for a human, but the gate's approval queue is at its limit: adding to
#   an overloaded queue invites rubber-stamping, so the gate refuses instead.
# custom:
#   rule: L5.approval_queue_overloaded
#   layer: l5_evaluation_observability
#   threats: [T10]
#   mitigations: [hitl_escalation, human_dual_control]
deny contains reason("L5.approval_queue_overloaded", ["T10"], msg) if {
	lib.pending_approvals >= queue_limit
	count(open_escalations) > 0
	msg := sprintf("%d approvals are already pending (limit %d); %s's request that needs a human is refused", [lib.pending_approvals, queue_limit, input.subject.id])
}

# METADATA
# title: Propagate the trace to the delegate
# custom:
#   rule: L5.propagate_trace
#   layer: l5_evaluation_observability
#   threats: [T8]
#   mitigations: [output_provenance_tracking]
# (The reason is written out rather than merged with object.union: this fires on allowed requests.)
obligations contains {
	"rule": "L5.propagate_trace", "layer": layer, "threats": ["T8"], "message": msg,
	"type": "propagate_trace", "params": {"trace_id": trace},
} if {
	lib.is_delegation
	trace := input.context.trace_id
	msg := sprintf("pass trace id %s to %s with the task", [trace, input.delegatee])
}

hitl := set()
