package maestro.layers.l4_deployment_infrastructure_test

import rego.v1

import data.maestro.layers.l4_deployment_infrastructure as l4
import data.maestro.testing as t

test_code_exec_outside_sandbox_denies if {
	t.fires(l4.deny, "L4.code_exec_outside_sandbox") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": false, "location": "local"}
}

test_code_exec_outside_sandbox_allows_sandboxed_run if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": true, "location": "local", "secrets": []}
	count(d) == 0
}

test_sandbox_obligation_names_profile if {
	some o in l4.obligations with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": true}
	o.rule == "L4.sandbox"
	o.params.profile == "gvisor"
}

test_secret_out_of_scope_denies if {
	t.fires(l4.deny, "L4.secret_out_of_scope") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": true, "secrets": ["coder/git-token", "analyst-finance/ledger-db"]}
}

test_secret_out_of_scope_allows_prefix_scope if {
	not t.fires(l4.deny, "L4.secret_out_of_scope") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "sql_query"
		with input.execution as {"secrets": ["analyst-finance/ledger-db"]}
}

test_egress_not_allowlisted_denies_host if {
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "http_fetch"
		with input.arguments as {"url": "https://paste.attacker.example/p"}
}

# A caller's execution.egress is not consulted: an offline tool's declared host neither denies
# nor allows (leaving the declaration out must not be what escapes a check).
test_declared_egress_of_an_offline_tool_is_not_read if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": true, "location": "local", "secrets": [], "egress": ["paste.attacker.example"]}
	count(d) == 0
}

test_secret_tool_without_declared_secrets_is_denied if {
	t.fires(l4.deny, "L4.secrets_undeclared") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": true, "location": "local"}
}

test_unknown_tool_reads_secrets if {
	t.fires(l4.deny, "L4.secrets_undeclared") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "unregistered_tool"
}

test_declared_secrets_of_a_tool_that_reads_none_are_not_read if {
	not t.fires(l4.deny, "L4.secret_out_of_scope") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "kb_search"
		with input.execution as {"secrets": ["finance/ledger-key"]}
}

test_egress_not_allowlisted_denies_unlisted_destination if {
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "export"
		with input.data as {"classification": "public"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "files.attacker.example"}
}

test_egress_not_allowlisted_denies_destination_outside_agent_list if {
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "data_movement"
		with input.subject as {"id": t.coder}
		with input.operation as "export"
		with input.data as {"classification": "public"}
		with input.source as {"type": "agent", "id": t.coder}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
}

test_egress_not_allowlisted_allows_listed_hosts if {
	not t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.execution as {"sandbox": true, "egress": ["pypi.org", "git.corp.example"]}
	not t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "export"
		with input.data as {"classification": "public"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
}

test_sensitive_data_off_local_denies_cloud_execution if {
	t.fires(l4.deny, "L4.sensitive_data_off_local") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.target as {"type": "store", "id": "analysis-outputs"}
}

test_sensitive_data_off_local_denies_move_to_cloud_agent if {
	t.fires(l4.deny, "L4.sensitive_data_off_local") with input.kind as "data_movement"
		with input.subject as {"id": t.orchestrator}
		with input.operation as "copy"
		with input.data as {"classification": "confidential"}
		with input.source as {"type": "store", "id": "analysis-outputs"}
		with input.destination as {"type": "agent", "id": t.collector_web}
}

test_sensitive_data_off_local_allows_local_analysis if {
	not t.fires(l4.deny, "L4.sensitive_data_off_local") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "sql_query"
		with input.target as {"type": "store", "id": "analysis-outputs"}
		with input.execution as {"location": "local"}
	not t.fires(l4.deny, "L4.sensitive_data_off_local") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.target as {"type": "store", "id": "reports"}
}

test_location_mismatch_denies if {
	t.fires(l4.deny, "L4.location_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.execution as {"location": "cloud"}
}

test_location_mismatch_allows_registered_location if {
	not t.fires(l4.deny, "L4.location_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.execution as {"location": "cloud"}
}

# An unregistered handler has no registered location: the reason names it "unknown".
test_sensitive_data_off_local_names_unknown_location if {
	some r in l4.deny with input.kind as "data_movement"
		with input.subject as {"id": t.stranger}
		with input.data as {"classification": "restricted"}
		with input.destination as {"type": "store", "id": "reports"}
	r.rule == "L4.sensitive_data_off_local"
	r.message == sprintf("restricted data reaches agent %s, which runs on unknown compute; that classification stays local", [t.stranger])
}

test_egress_not_allowlisted_allows_listed_external_destination if {
	not t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.data as {"classification": "public"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
}
