# The decision: combines every layer's deny, hitl and obligations sets into one result.
# Any deny wins; else any escalation a granted approval does not cover; else allow.
# Unknown request kinds (CL.unknown_request_kind) and unregistered subjects
# (L7.unregistered_agent) are denied by their layers, so no separate default is needed;
# `default result` only guards against an evaluation that leaves the result undefined.
package maestro.decision

import rego.v1

import data.maestro.layers.cross_layer
import data.maestro.layers.l1_foundation_models as l1
import data.maestro.layers.l2_data_operations as l2
import data.maestro.layers.l3_agent_frameworks as l3
import data.maestro.layers.l4_deployment_infrastructure as l4
import data.maestro.layers.l5_evaluation_observability as l5
import data.maestro.layers.l6_security_compliance as l6
import data.maestro.layers.l7_agent_ecosystem as l7
import data.maestro.lib

default result := {
	"decision": "deny",
	"reasons": [{
		"rule": "CL.policy_undefined",
		"layer": "cross_layer",
		"threats": ["T24"],
		"message": "the policy produced no decision for this request",
	}],
	"obligations": [],
	"layers": {},
	"approvers_required": 0,
}

result := outcome(denies, open_escalations, obligations, verdicts)

# The combination, as a pure function of the layers' sets so it can be unit-tested directly.
outcome(denied, escalated, obliged, layer_verdicts) := {
	"decision": verdict(denied, escalated),
	"reasons": reasons_for(denied, escalated),
	"obligations": sort([o | some o in obliged]),
	"layers": layer_verdicts,
	"approvers_required": approvers_for(denied, escalated),
}

verdict(denied, escalated) := "deny" if {
	count(denied) > 0
} else := "require_hitl" if {
	count(escalated) > 0
} else := "allow"

reasons_for(denied, escalated) := sort([r | some r in denied]) if {
	count(denied) > 0
} else := sort([r | some r in escalated]) if {
	count(escalated) > 0
} else := []

# The most approvers any open escalation asks for (1 unless it says otherwise); 0 unless escalating.
approvers_for(denied, escalated) := max({object.get(h, "approvers", 1) | some h in escalated}) if {
	count(denied) == 0
	count(escalated) > 0
} else := 0

# Escalations a granted approval for this exact request does not already cover.
open_of(escalations) := {h | some h in escalations; not lib.satisfied(h)}

verdicts := {
	"l1_foundation_models": verdict(l1.deny, open_of(l1.hitl)),
	"l2_data_operations": verdict(l2.deny, open_of(l2.hitl)),
	"l3_agent_frameworks": verdict(l3.deny, open_of(l3.hitl)),
	"l4_deployment_infrastructure": verdict(l4.deny, open_of(l4.hitl)),
	"l5_evaluation_observability": verdict(l5.deny, open_of(l5.hitl)),
	"l6_security_compliance": verdict(l6.deny, open_of(l6.hitl)),
	"l7_agent_ecosystem": verdict(l7.deny, open_of(l7.hitl)),
	"cross_layer": verdict(cross_layer.deny, open_of(cross_layer.hitl)),
}

denies := (((l1.deny | l2.deny) | (l3.deny | l4.deny)) | ((l5.deny | l6.deny) | (l7.deny | cross_layer.deny)))

escalations := (((l1.hitl | l2.hitl) | (l3.hitl | l4.hitl)) | ((l5.hitl | l6.hitl) | (l7.hitl | cross_layer.hitl)))

obligations := (((l1.obligations | l2.obligations) | (l3.obligations | l4.obligations)) | ((l5.obligations | l6.obligations) | (l7.obligations | cross_layer.obligations)))

open_escalations := open_of(escalations)
