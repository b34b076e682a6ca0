# L3.tool_argument_schema_mismatch (T41): the gate's check of the arguments against the tool's
# registry input_schema (input.state.arguments, computed in Python) and what it must allow.
package maestro.layers.l3_agent_frameworks.schema_test

import rego.v1

import data.maestro.layers.l3_agent_frameworks as l3
import data.maestro.testing as t

test_schema_mismatch_denies_with_the_mismatch_named if {
	some r in l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.arguments as {"project": "SEC"}
		with input.state as {"arguments": {"tool": "jira_create_issue", "valid": false, "errors": ["arguments: 'summary' is a required property"]}}
	r.rule == "L3.tool_argument_schema_mismatch"
	contains(r.message, "'summary' is a required property")
}

test_schema_mismatch_denies_unchecked_arguments if {
	t.fires(l3.deny, "L3.tool_argument_schema_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.arguments as {"project": "SEC", "summary": "s"}
}

test_schema_mismatch_denies_an_outcome_for_another_tool if {
	t.fires(l3.deny, "L3.tool_argument_schema_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.state as {"arguments": {"tool": "calendar_read", "valid": true, "errors": []}}
}

test_schema_mismatch_denies_an_mcp_tool_without_a_schema if {
	t.fires(l3.deny, "L3.tool_argument_schema_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with data.maestro.registry.tools as {"jira_create_issue": {"risk_class": "write", "server": "mcp://jira.corp.example"}}
		with input.state as {"arguments": {"tool": "jira_create_issue", "valid": true, "errors": []}}
}

test_schema_mismatch_allows_arguments_the_gate_found_valid if {
	not t.fires(l3.deny, "L3.tool_argument_schema_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with input.arguments as {"project": "SEC", "summary": "s"}
		with input.state as {"arguments": {"tool": "jira_create_issue", "valid": true, "errors": []}}
}

test_schema_mismatch_leaves_a_tool_without_schema_or_server_alone if {
	not t.fires(l3.deny, "L3.tool_argument_schema_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
}
