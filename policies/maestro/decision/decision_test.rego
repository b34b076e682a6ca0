package maestro.decision_test

import rego.v1

import data.maestro.decision
import data.maestro.testing as t


deny_r := {"rule": "L3.tool_not_allowlisted", "layer": "l3_agent_frameworks", "threats": ["T2"], "message": "no"}

hitl_r := {"rule": "L7.routing_change_requires_approval", "layer": "l7_agent_ecosystem", "threats": ["T13"], "message": "ask"}

dual_r := {"rule": "L6.irreversible_dual_control", "layer": "l6_security_compliance", "threats": ["T10"], "message": "two", "approvers": 2}

sandbox_o := {"rule": "L4.sandbox", "layer": "l4_deployment_infrastructure", "threats": ["T11"], "message": "sandbox", "type": "sandbox"}

test_outcome_deny_wins_over_hitl if {
	r := decision.outcome({deny_r}, {hitl_r}, set(), {})
	r.decision == "deny"
	r.reasons == [deny_r]
	r.approvers_required == 0
}

test_outcome_hitl_returns_hitl_reasons_and_one_approver if {
	r := decision.outcome(set(), {hitl_r}, set(), {})
	r.decision == "require_hitl"
	r.reasons == [hitl_r]
	r.approvers_required == 1
}

test_outcome_irreversible_needs_two_approvers if {
	# L6.irreversible_dual_control carries approvers 2; the maximum wins.
	r := decision.outcome(set(), {hitl_r, dual_r}, set(), {})
	r.decision == "require_hitl"
	r.approvers_required == 2
	count(r.reasons) == 2
}

test_outcome_allow_has_no_reasons_but_keeps_obligations if {
	r := decision.outcome(set(), set(), {sandbox_o}, {"l4_deployment_infrastructure": "allow"})
	r.decision == "allow"
	r.reasons == []
	r.obligations == [sandbox_o]
	r.approvers_required == 0
}

test_outcome_obligations_returned_on_deny if {
	r := decision.outcome({deny_r}, set(), {sandbox_o}, {})
	r.obligations == [sandbox_o]
}

test_verdict_per_layer if {
	decision.verdict({deny_r}, {hitl_r}) == "deny"
	decision.verdict(set(), {hitl_r}) == "require_hitl"
	decision.verdict(set(), set()) == "allow"
}
