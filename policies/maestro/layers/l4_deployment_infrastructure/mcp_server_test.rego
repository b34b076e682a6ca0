# The MCP server rules (T42, T43, T45): what the registry's `servers` section must say about the
# server behind a tool, each with the nearest case that passes.
package maestro.layers.l4_deployment_infrastructure.mcp_server_test

import rego.v1

import data.maestro.layers.l4_deployment_infrastructure as l4
import data.maestro.testing as t

test_registered_servers_pass_every_server_rule if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
	not t.fires(d, "L4.mcp_server_exposed")
	not t.fires(d, "L4.mcp_server_tenant_mismatch")
	not t.fires(d, "L4.mcp_server_over_privileged")
}

test_a_tool_off_any_server_is_not_judged if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with data.maestro.registry.servers as {}
	not t.fires(d, "L4.mcp_server_exposed")
	not t.fires(d, "L4.mcp_server_over_privileged")
}

test_mcp_server_exposed_denies_a_public_server if {
	t.fires(l4.deny, "L4.mcp_server_exposed") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with data.maestro.registry.servers as {"mcp://jira.corp.example": {"exposure": "public", "tenants": ["corp"], "permissions": ["tickets:write"]}}
}

test_mcp_server_exposed_denies_a_server_the_registry_lacks if {
	t.fires(l4.deny, "L4.mcp_server_exposed") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "calendar_read"
		with data.maestro.registry.servers as {}
}

test_mcp_server_exposed_allows_a_local_server if {
	not t.fires(l4.deny, "L4.mcp_server_exposed") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "calendar_read"
}

test_mcp_server_tenant_mismatch_denies_another_tenants_server if {
	t.fires(l4.deny, "L4.mcp_server_tenant_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with data.maestro.registry.servers as {"mcp://jira.corp.example": {"exposure": "local", "tenants": ["partner"], "permissions": ["tickets:write"]}}
}

test_mcp_server_tenant_mismatch_denies_a_shared_server_without_isolation if {
	t.fires(l4.deny, "L4.mcp_server_tenant_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "calendar_read"
		with data.maestro.registry.servers as {"mcp://calendar.corp.example": {"exposure": "local", "tenants": ["*"], "permissions": ["calendar:read"]}}
}

test_mcp_server_tenant_mismatch_allows_a_shared_isolating_server if {
	not t.fires(l4.deny, "L4.mcp_server_tenant_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "calendar_read"
}

test_mcp_server_over_privileged_denies_a_permission_the_agent_lacks if {
	some r in l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with data.maestro.registry.servers as {"mcp://jira.corp.example": {"exposure": "local", "tenants": ["corp"], "permissions": ["tickets:write", "host:shell"]}}
	r.rule == "L4.mcp_server_over_privileged"
	contains(r.message, "host:shell")
}

test_mcp_server_over_privileged_denies_undeclared_permissions if {
	t.fires(l4.deny, "L4.mcp_server_over_privileged") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
		with data.maestro.registry.servers as {"mcp://jira.corp.example": {"exposure": "local", "tenants": ["corp"]}}
}

test_mcp_server_over_privileged_allows_permissions_within_scope if {
	not t.fires(l4.deny, "L4.mcp_server_over_privileged") with input.kind as "agent_action"
		with input.subject as {"id": t.mcp_gateway}
		with input.action as "jira_create_issue"
}
