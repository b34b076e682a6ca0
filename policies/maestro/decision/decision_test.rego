package maestro.decision_test

import rego.v1

import data.maestro.decision

deny_r := {"rule": "L3.tool_not_allowlisted", "layer": "l3_agent_frameworks", "threats": ["T2"], "message": "no"}

hitl_r := {"rule": "L7.routing_change_requires_approval", "layer": "l7_agent_ecosystem", "threats": ["T13"], "message": "ask"}

test_layer_verdict_deny_wins_over_hitl if {
	decision.layer_verdict({deny_r}, {hitl_r}) == "deny"
}

test_layer_verdict_escalates_without_approval if {
	decision.layer_verdict(set(), {hitl_r}) == "require_hitl"
}

test_layer_verdict_allows_with_nothing_raised if {
	decision.layer_verdict(set(), set()) == "allow"
}
