package maestro.layers.l7_agent_ecosystem_test

import rego.v1

import data.maestro.layers.l7_agent_ecosystem as l7
import data.maestro.testing as t

jira_digest := data.maestro.registry.tools.jira_create_issue.description_digest

test_unregistered_agent_denies_subject if {
	t.fires(l7.deny, "L7.unregistered_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.stranger}
		with input.action as "kb_search"
}

test_unregistered_agent_denies_delegatee if {
	t.fires(l7.deny, "L7.unregistered_agent") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security-2"
}

test_unregistered_agent_allows_registered_participants if {
	not t.fires(l7.deny, "L7.unregistered_agent") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
}

test_unregistered_agent_denies_empty_registry if {
	t.fires(l7.deny, "L7.unregistered_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "task_dispatch"
		with data.maestro.registry as {}
}

test_impersonated_agent_denies if {
	t.fires(l7.deny, "L7.impersonated_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "routing_graph_read"
		with input.state as {"caller": {"authenticated_subjects": [t.collector_web]}}
}

test_impersonated_agent_allows_authenticated_subject if {
	not t.fires(l7.deny, "L7.impersonated_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "routing_graph_read"
		with input.state as {"caller": {"authenticated_subjects": [t.orchestrator]}}
	not t.fires(l7.deny, "L7.impersonated_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "routing_graph_read"
}

test_trust_below_threshold_denies if {
	t.fires(l7.deny, "L7.trust_below_threshold") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "copy"
		with input.data as {"classification": "public"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.partner}
}

test_trust_below_threshold_allows_trusted_peer if {
	not t.fires(l7.deny, "L7.trust_below_threshold") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "copy"
		with input.data as {"classification": "public"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.analyst_finance}
}

test_trust_below_threshold_follows_registry_minimum if {
	t.fires(l7.deny, "L7.trust_below_threshold") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "web_search"
		with data.maestro.registry.thresholds.trust_score_min as 0.8
}

test_tool_description_mismatch_denies_other_digest if {
	t.fires(l7.deny, "L7.tool_description_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.tool as {"server": "mcp://jira.corp.example", "digest": "sha256:rugpull"}
}

test_tool_description_mismatch_denies_other_server if {
	t.fires(l7.deny, "L7.tool_description_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.tool as {"server": "mcp://jira.evil.example", "digest": jira_digest}
}

test_tool_description_mismatch_denies_missing_descriptor if {
	t.fires(l7.deny, "L7.tool_description_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
}

test_tool_description_mismatch_allows_approved_description if {
	not t.fires(l7.deny, "L7.tool_description_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.tool as {"server": "mcp://jira.corp.example", "digest": jira_digest}
}

test_routing_change_requires_approval_escalates if {
	t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "routing_graph_update"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_routing_change_requires_approval_escalates_store_write if {
	t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "data_movement"
		with input.subject as {"id": t.orchestrator}
		with input.operation as "write"
		with input.data as {"classification": "confidential"}
		with input.source as {"type": "agent", "id": t.orchestrator}
		with input.destination as {"type": "store", "id": "routing-graph"}
}

test_routing_change_requires_approval_allows_reading_the_graph if {
	not t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "routing_graph_read"
}

# A registered agent without a trust score counts as 0 (as object.get(entry, "trust_score", 0)).
test_trust_below_threshold_denies_unscored_receiver if {
	reasons := l7.deny with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.destination as {"type": "agent", "id": "spiffe://corp.example/agent/unscored"}
		with data.maestro.registry.agents["spiffe://corp.example/agent/unscored"] as {"role": "x"}
	some r in reasons
	r.rule == "L7.trust_below_threshold"
	r.message == "agent spiffe://corp.example/agent/unscored has trust score 0, below the minimum 0.6"
}

test_trust_below_threshold_denies_low_trust_chain_hop if {
	t.fires(l7.deny, "L7.trust_below_threshold") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"delegation_chain": [{"delegator": t.partner, "delegatee": t.reporter, "scopes": []}]}
}

test_tool_description_mismatch_reports_missing_digest if {
	reasons := l7.deny with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.tool as {"server": "mcp://jira.corp.example"}
	some r in reasons
	r.rule == "L7.tool_description_mismatch"
	r.message == sprintf("tool jira_create_issue is described by no digest, not by its approved description digest %s", [jira_digest])
}

# A tool or store whose entry says nothing about routing is judged as touching the routing graph
# (registry monotonicity: leaving the field out never loosens).
test_routing_change_requires_approval_escalates_a_tool_silent_on_routing if {
	t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "note_write"
		with data.maestro.registry.tools as {"note_write": {"risk_class": "write"}}
}

test_routing_change_requires_approval_allows_a_tool_that_leaves_routing if {
	not t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "note_write"
		with data.maestro.registry.tools as {"note_write": {"risk_class": "write", "modifies_routing": false}}
}

test_routing_change_requires_approval_escalates_a_store_silent_on_routing if {
	t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "data_movement"
		with input.subject as {"id": t.orchestrator}
		with input.operation as "write"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "agent", "id": t.orchestrator}
		with input.destination as {"type": "store", "id": "notes"}
		with data.maestro.registry.stores as {"notes": {"classification": "internal", "tenant": "corp"}}
}

test_routing_change_requires_approval_allows_a_store_that_is_not_the_graph if {
	not t.fires(l7.hitl, "L7.routing_change_requires_approval") with input.kind as "data_movement"
		with input.subject as {"id": t.orchestrator}
		with input.operation as "write"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "agent", "id": t.orchestrator}
		with input.destination as {"type": "store", "id": "notes"}
		with data.maestro.registry.stores as {"notes": {"classification": "internal", "tenant": "corp", "routing_graph": false}}
}
