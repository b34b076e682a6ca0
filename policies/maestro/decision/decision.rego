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

result := {
	"decision": decision,
	"reasons": reasons,
	"obligations": sort([o | some o in obligations]),
	"layers": layers,
	"approvers_required": approvers_required,
}

verdicts := {
	"l1_foundation_models": verdict(l1.deny, l1.hitl),
	"l2_data_operations": verdict(l2.deny, l2.hitl),
	"l3_agent_frameworks": verdict(l3.deny, l3.hitl),
	"l4_deployment_infrastructure": verdict(l4.deny, l4.hitl),
	"l5_evaluation_observability": verdict(l5.deny, l5.hitl),
	"l6_security_compliance": verdict(l6.deny, l6.hitl),
	"l7_agent_ecosystem": verdict(l7.deny, l7.hitl),
	"cross_layer": verdict(cross_layer.deny, cross_layer.hitl),
}

layers := verdicts

verdict(denies, escalations) := "deny" if {
	count(denies) > 0
} else := "require_hitl" if {
	some h in escalations
	not lib.satisfied(h)
} else := "allow"

denies := (((l1.deny | l2.deny) | (l3.deny | l4.deny)) | ((l5.deny | l6.deny) | (l7.deny | cross_layer.deny)))

escalations := (((l1.hitl | l2.hitl) | (l3.hitl | l4.hitl)) | ((l5.hitl | l6.hitl) | (l7.hitl | cross_layer.hitl)))

obligations := (((l1.obligations | l2.obligations) | (l3.obligations | l4.obligations)) | ((l5.obligations | l6.obligations) | (l7.obligations | cross_layer.obligations)))

open_escalations contains h if {
	some h in escalations
	not lib.satisfied(h)
}

decision := "deny" if {
	count(denies) > 0
} else := "require_hitl" if {
	count(open_escalations) > 0
} else := "allow"

reasons := sort([r | some r in denies]) if {
	decision == "deny"
} else := sort([r | some r in open_escalations]) if {
	decision == "require_hitl"
} else := []

approvers_required := max({object.get(h, "approvers", 1) | some h in open_escalations}) if {
	decision == "require_hitl"
} else := 0
