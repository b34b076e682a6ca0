package maestro.layers.cross_layer_test

import rego.v1

import data.maestro.layers.cross_layer as cl
import data.maestro.testing as t

hop(from, to, scopes, ttl) := {"delegator": from, "delegatee": to, "scopes": scopes, "ttl_seconds": ttl}

test_unknown_request_kind_denies if {
	t.fires(cl.deny, "CL.unknown_request_kind") with input.kind as "tool_install"
		with input.subject as {"id": t.orchestrator}
}

test_unknown_request_kind_allows_known_kinds if {
	not t.fires(cl.deny, "CL.unknown_request_kind") with input.kind as "agent_action"
		with input.subject as {"id": t.orchestrator}
		with input.action as "routing_graph_read"
}

test_delegation_not_in_topology_denies if {
	t.fires(cl.deny, "CL.delegation_not_in_topology") with input.kind as "delegation"
		with input.subject as {"id": t.collector_web}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "analyse this", "scopes": []}
		with input.ttl_seconds as 60
}

test_delegation_not_in_topology_denies_chain_hop if {
	t.fires(cl.deny, "CL.delegation_not_in_topology") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "repo_read"
		with input.context as {"delegation_chain": [hop(t.reporter, t.coder, [], 60)]}
}

test_delegation_not_in_topology_allows_declared_edge if {
	not t.fires(cl.deny, "CL.delegation_not_in_topology") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "triage", "scopes": ["kb:read"]}
		with input.ttl_seconds as 600
}

test_scope_escalation_denies_unheld_scope if {
	t.fires(cl.deny, "CL.scope_escalation") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "publish", "scopes": ["reports:write", "reports:publish"]}
		with input.ttl_seconds as 600
}

test_scope_escalation_denies_scope_parent_did_not_grant if {
	# analyst-security holds reports:write itself, but its parent hop granted only kb:read.
	t.fires(cl.deny, "CL.scope_escalation") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "write up", "scopes": ["reports:write"]}
		with input.ttl_seconds as 600
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, ["kb:read"], 3600)]}
}

test_scope_escalation_denies_widening_chain_hop if {
	t.fires(cl.deny, "CL.scope_escalation") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"delegation_chain": [
			hop(t.orchestrator, t.analyst_security, ["kb:read"], 3600),
			hop(t.analyst_security, t.reporter, ["kb:read", "reports:publish"], 600),
		]}
}

test_scope_escalation_allows_subset if {
	not t.fires(cl.deny, "CL.scope_escalation") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.task as {"goal": "write up", "scopes": ["reports:write"]}
		with input.ttl_seconds as 600
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, ["kb:read", "reports:write"], 3600)]}
}

test_delegation_not_in_topology_denies_agent_without_delegatees if {
	# A registry entry that lists no `delegatees` may delegate to no one, on every engine.
	t.fires(cl.deny, "CL.delegation_not_in_topology") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "x", "scopes": []}
		with input.ttl_seconds as 60
		with data.maestro.registry.agents as {"spiffe://corp.example/agent/orchestrator": {"trust_score": 0.9}}
}

test_delegation_not_in_topology_denies_chain_hop_from_agent_without_delegatees if {
	t.fires(cl.deny, "CL.delegation_not_in_topology") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, [], 600)]}
		with data.maestro.registry.agents as {"spiffe://corp.example/agent/orchestrator": {"trust_score": 0.9}}
}

test_scope_escalation_empty_scope_lists_exceed_nothing if {
	# Empty scope lists are compared as sets (object.subset([], set()) is false on OPA).
	not cl.scopes_exceed_held with input.kind as "delegation"
		with input.subject as {"id": "spiffe://corp.example/agent/ghost"}
		with input.task as {"goal": "x", "scopes": []}
	not cl.scopes_exceed_held with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.task as {"goal": "x", "scopes": []}
		with input.context as {"delegation_chain": [hop(t.orchestrator, t.analyst_security, [], 600)]}
}
