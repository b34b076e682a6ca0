package maestro.layers.cross_layer_pivot_test

import rego.v1

import data.maestro.layers.cross_layer as cl
import data.maestro.testing as t

test_chain_autonomy_exceeded_escalates_a_write_pushed_through_an_open_ended_root if {
	h := cl.hitl with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "memory_write"
		with input.context as {"task_id": "t-1", "delegation_chain": [{"delegator": "spiffe://corp.example/agent/helpdesk", "delegatee": t.analyst_security, "scopes": ["kb:read"]}]}
	some r in h
	r.rule == "CL.chain_autonomy_exceeded"
	r.message == `agent spiffe://corp.example/agent/analyst-security does a write request through a chain from spiffe://corp.example/agent/helpdesk, and delegator(s) ["spiffe://corp.example/agent/helpdesk"] may not run write unattended`
}

test_chain_autonomy_exceeded_allows_a_read_through_an_open_ended_root if {
	not t.fires(cl.hitl, "CL.chain_autonomy_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.context as {"task_id": "t-1", "delegation_chain": [{"delegator": "spiffe://corp.example/agent/helpdesk", "delegatee": t.analyst_security, "scopes": ["kb:read"]}]}
}

test_chain_autonomy_exceeded_allows_a_write_through_directed_delegators if {
	not t.fires(cl.hitl, "CL.chain_autonomy_exceeded") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "write"
		with input.context as {"task_id": "t-1", "delegation_chain": [
			{"delegator": t.orchestrator, "delegatee": t.analyst_security, "scopes": ["reports:write"]},
			{"delegator": t.analyst_security, "delegatee": t.reporter, "scopes": ["reports:write"]},
		]}
}

test_chain_autonomy_exceeded_escalates_code_no_delegator_runs_unattended if {
	# The coder may run code unattended itself; through the orchestrator (directed) it may not.
	t.fires(cl.hitl, "CL.chain_autonomy_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.context as {"task_id": "t-1", "delegation_chain": [{"delegator": t.orchestrator, "delegatee": t.coder, "scopes": ["code:exec"]}]}
}

test_chain_autonomy_exceeded_bounds_by_an_unregistered_delegator if {
	t.fires(cl.hitl, "CL.chain_autonomy_exceeded") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "read"
		with input.context as {"delegation_chain": [{"delegator": "spiffe://corp.example/agent/ghost", "delegatee": t.reporter, "scopes": []}]}
}

test_chain_autonomy_exceeded_leaves_irreversible_actions_to_dual_control if {
	not t.fires(cl.hitl, "CL.chain_autonomy_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "merge_pull_request"
		with input.context as {"task_id": "t-1", "delegation_chain": [{"delegator": "spiffe://corp.example/agent/helpdesk", "delegatee": t.coder, "scopes": []}]}
}
