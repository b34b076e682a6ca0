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

# Built from rules rather than as a function of the layers' sets: rego-cpp pays for set
# arguments on every call, which made a function's cost grow faster than the number of reasons
# (a request with 56 reasons took 127 ms as a function, 15 ms as rules). The combination is
# tested on real requests by tests/test_decision_result.py, on both engines: `with` over the
# whole bundle is too costly for rego-cpp's test runner.
result := {
	"decision": decision,
	"reasons": reasons,
	"obligations": sort([o | some o in obligations]),
	"layers": verdicts,
	"approvers_required": approvers_required,
}

# Any deny wins; else any open escalation; else allow. Emptiness is tested with `some _ in s`
# (a scan), which costs less on rego-cpp than `count(s) > 0`.
decision := "deny" if {
	some _ in denies
} else := "require_hitl" if {
	some _ in open_escalations
} else := "allow"

# The reasons behind the decision: its denies, else its open escalations, sorted.
reasons := sort([r | some r in denies]) if {
	decision == "deny"
} else := sort([r | some r in open_escalations]) if {
	decision == "require_hitl"
} else := []

# The most approvers any open escalation asks for (1 unless it says otherwise); 0 unless escalating.
approvers_required := max({object.get(h, "approvers", 1) | some h in open_escalations}) if {
	decision == "require_hitl"
} else := 0

# A layer's verdict: its denies, else its escalations a granted approval does not cover.
layer_verdict(denied, escalated) := "deny" if {
	some _ in denied
} else := "require_hitl" if {
	some h in escalated
	not lib.satisfied(h)
} else := "allow"

verdicts := {
	"l1_foundation_models": layer_verdict(l1.deny, l1.hitl),
	"l2_data_operations": layer_verdict(l2.deny, l2.hitl),
	"l3_agent_frameworks": layer_verdict(l3.deny, l3.hitl),
	"l4_deployment_infrastructure": layer_verdict(l4.deny, l4.hitl),
	"l5_evaluation_observability": layer_verdict(l5.deny, l5.hitl),
	"l6_security_compliance": layer_verdict(l6.deny, l6.hitl),
	"l7_agent_ecosystem": layer_verdict(l7.deny, l7.hitl),
	"cross_layer": layer_verdict(cross_layer.deny, cross_layer.hitl),
}

denies contains r if some r in l1.deny

denies contains r if some r in l2.deny

denies contains r if some r in l3.deny

denies contains r if some r in l4.deny

denies contains r if some r in l5.deny

denies contains r if some r in l6.deny

denies contains r if some r in l7.deny

denies contains r if some r in cross_layer.deny

escalations contains h if some h in l1.hitl

escalations contains h if some h in l2.hitl

escalations contains h if some h in l3.hitl

escalations contains h if some h in l4.hitl

escalations contains h if some h in l5.hitl

escalations contains h if some h in l6.hitl

escalations contains h if some h in l7.hitl

escalations contains h if some h in cross_layer.hitl

obligations contains o if some o in l1.obligations

obligations contains o if some o in l2.obligations

obligations contains o if some o in l3.obligations

obligations contains o if some o in l4.obligations

obligations contains o if some o in l5.obligations

obligations contains o if some o in l6.obligations

obligations contains o if some o in l7.obligations

obligations contains o if some o in cross_layer.obligations

# Escalations a granted approval for this exact request does not already cover.
open_escalations contains h if {
	some h in escalations
	not lib.satisfied(h)
}
