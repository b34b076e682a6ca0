package maestro.layers.cross_layer_chain_test

import rego.v1

import data.maestro.layers.cross_layer as cl
import data.maestro.testing as t

hop(from, to, scopes, ttl) := {"delegator": from, "delegatee": to, "scopes": scopes, "ttl_seconds": ttl}

test_chain_depth_exceeded_denies_agent_limit if {
	# The orchestrator may only start chains (depth 1); here it would add a second hop.
	t.fires(cl.deny, "CL.chain_depth_exceeded") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 60
		with input.context as {"delegation_chain": [hop(t.collector_feeds, t.orchestrator, [], 600)]}
}

test_chain_depth_exceeded_denies_global_limit if {
	t.fires(cl.deny, "CL.chain_depth_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"delegation_chain": [
			hop(t.orchestrator, t.collector_feeds, [], 600),
			hop(t.collector_feeds, t.analyst_security, [], 600),
			hop(t.analyst_security, t.reporter, [], 600),
		]}
		with data.maestro.registry.thresholds.max_chain_depth as 2
}

test_chain_depth_exceeded_allows_within_limits if {
	not t.fires(cl.deny, "CL.chain_depth_exceeded") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 60
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, [], 600)]}
}

test_delegation_cycle_denies if {
	t.fires(cl.deny, "CL.delegation_cycle") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/collector-feeds"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 60
		with input.context as {"delegation_chain": [hop(t.collector_feeds, t.analyst_security, [], 600)]}
}

test_delegation_cycle_allows_linear_path if {
	not t.fires(cl.deny, "CL.delegation_cycle") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 60
		with input.context as {"delegation_chain": [hop(t.collector_feeds, t.analyst_security, [], 600)]}
}

test_chain_discontinuous_denies_spliced_chain if {
	t.fires(cl.deny, "CL.chain_discontinuous") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"delegation_chain": [
			hop(t.orchestrator, t.analyst_finance, [], 600),
			hop(t.analyst_security, t.reporter, [], 600),
		]}
}

test_chain_discontinuous_denies_chain_ending_elsewhere if {
	t.fires(cl.deny, "CL.chain_discontinuous") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_finance, [], 600)]}
}

test_chain_discontinuous_allows_connected_chain if {
	not t.fires(cl.deny, "CL.chain_discontinuous") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"delegation_chain": [
			hop(t.orchestrator, t.analyst_finance, [], 600),
			hop(t.analyst_finance, t.reporter, [], 600),
		]}
}

test_ttl_exceeds_parent_denies if {
	t.fires(cl.deny, "CL.ttl_exceeds_parent") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 7200
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, [], 3600)]}
}

test_ttl_exceeds_parent_denies_root_above_maximum if {
	t.fires(cl.deny, "CL.ttl_exceeds_parent") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 90000
}

test_ttl_exceeds_parent_allows_shorter_ttl if {
	not t.fires(cl.deny, "CL.ttl_exceeds_parent") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 3600
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, [], 3600)]}
}

test_delegation_cycle_denies_self_delegation_without_chain if {
	t.fires(cl.deny, "CL.delegation_cycle") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 60
}

test_scope_escalation_denies_scope_outside_parent_hop if {
	# The analyst holds kb:read by registration, but its parent hop granted only analysis:read.
	t.fires(cl.deny, "CL.scope_escalation") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "x", "scopes": ["kb:read"]}
		with input.ttl_seconds as 60
		with input.context as {"delegation_chain": [{"delegator": t.orchestrator, "delegatee": t.analyst_security, "scopes": ["analysis:read"], "ttl_seconds": 600}]}
}

test_restricted_provenance_to_external_denies_restricted_store_origin if {
	t.fires(cl.deny, "CL.restricted_provenance_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.data as {"classification": "public", "provenance": ["incident-db"]}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.operation as "export"
}

test_restricted_provenance_to_external_allows_internal_origins if {
	not t.fires(cl.deny, "CL.restricted_provenance_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.data as {"classification": "public", "provenance": ["reports"]}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.operation as "export"
}

test_ttl_exceeds_parent_compares_ttls_as_numbers if {
	# 9795 < 86400 as numbers (rego-cpp's min() compared the texts and took 86400).
	t.fires(cl.deny, "CL.ttl_exceeds_parent") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 20000
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, [], 9795)]}
}
