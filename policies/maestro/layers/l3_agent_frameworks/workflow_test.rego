package maestro.layers.l3_agent_frameworks_workflow_test

import rego.v1

import data.maestro.layers.l3_agent_frameworks as l3
import data.maestro.testing as t

# --- plan order (T19) ---------------------------------------------------------------------

test_workflow_step_out_of_order_denies_skipping_ahead if {
	t.fires(l3.deny, "L3.workflow_step_out_of_order") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "sql_query"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query"}]}
		with input.state as {"session": {"recent": []}}
}

test_workflow_step_out_of_order_allows_the_next_step_after_the_recorded_ones if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "sql_query"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query"}]}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "task_id": "t-1", "decision": "allow"}]}}
	not t.fires(d, "L3.workflow_step_out_of_order")
	not t.fires(d, "L3.validation_step_skipped")
}

test_workflow_step_out_of_order_allows_the_first_step if {
	not t.fires(l3.deny, "L3.workflow_step_out_of_order") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "kb_search"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query"}]}
}

test_workflow_step_out_of_order_counts_only_the_subjects_allowed_steps_of_the_task if {
	# A denied attempt, another task's step and another agent's step did not run this plan.
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "sql_query"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query"}]}
		with input.state as {"session": {"recent": [
			{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "task_id": "t-1", "decision": "deny"},
			{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "task_id": "t-2", "decision": "allow"},
			{"agent": t.orchestrator, "kind": "agent_action", "action": "kb_search", "task_id": "t-1", "decision": "allow"},
		]}}
	some r in d
	r.rule == "L3.workflow_step_out_of_order"
	contains(r.message, "the next step of its plan is step 1, kb_search")
}

test_workflow_step_out_of_order_denies_a_request_after_the_plan_ran if {
	t.fires(l3.deny, "L3.workflow_step_out_of_order") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}]}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "task_id": "t-1", "decision": "allow"}]}}
}

test_workflow_step_out_of_order_names_movements_and_delegations_as_recorded if {
	not t.fires(l3.deny, "L3.workflow_step_out_of_order") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.context as {"task_id": "t-1", "plan": [{"action": "read"}, {"action": "delegate"}]}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "read", "task_id": "t-1", "decision": "allow"}]}}
}

test_validation_step_skipped_denies if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "memory_write"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query", "validation": true}, {"action": "memory_write"}]}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "task_id": "t-1", "decision": "allow"}]}}
	some r in d
	r.rule == "L3.validation_step_skipped"
	r.message == "agent spiffe://corp.example/agent/analyst-security runs memory_write (step 3 of its plan) before validation step 2, sql_query, ran"
}

test_validation_step_skipped_allows_once_the_validation_ran if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "memory_write"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query", "validation": true}, {"action": "memory_write"}]}
		with input.state as {"session": {"recent": [
			{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "task_id": "t-1", "decision": "allow"},
			{"agent": t.analyst_security, "kind": "agent_action", "action": "sql_query", "task_id": "t-1", "decision": "allow"},
		]}}
	not t.fires(d, "L3.validation_step_skipped")
	not t.fires(d, "L3.workflow_step_out_of_order")
}

test_validation_step_skipped_allows_skipping_an_ordinary_step_only_as_out_of_order if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "memory_write"
		with input.context as {"task_id": "t-1", "plan": [{"action": "kb_search"}, {"action": "sql_query"}, {"action": "memory_write"}]}
	not t.fires(d, "L3.validation_step_skipped")
	t.fires(d, "L3.workflow_step_out_of_order")
}

# --- workflow state versions (T21) -------------------------------------------------------

test_stale_workflow_state_denies if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance, "session_id": "s-1"}
		with input.action as "kb_search"
		with input.context as {"task_id": "close-q3", "state_version": 3}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "agent_action", "action": "memory_write", "task_id": "close-q3", "state_version": 4, "decision": "allow"}]}}
	some r in d
	r.rule == "L3.stale_workflow_state"
	r.message == "agent spiffe://corp.example/agent/analyst-finance acts on version 3 of the workflow state of task close-q3, but the session already acted on version(s) [4]"
}

test_stale_workflow_state_allows_the_newest_version if {
	not t.fires(l3.deny, "L3.stale_workflow_state") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance, "session_id": "s-1"}
		with input.action as "kb_search"
		with input.context as {"task_id": "close-q3", "state_version": 4}
		with input.state as {"session": {"recent": [
			{"agent": t.analyst_security, "kind": "agent_action", "action": "memory_write", "task_id": "close-q3", "state_version": 4, "decision": "allow"},
			{"agent": t.analyst_security, "kind": "agent_action", "action": "memory_write", "task_id": "close-q3", "state_version": 9, "decision": "deny"},
			{"agent": t.analyst_security, "kind": "agent_action", "action": "memory_write", "task_id": "other", "state_version": 9, "decision": "allow"},
		]}}
}

# --- inter-agent channels (T30) ----------------------------------------------------------

test_channel_not_granted_denies if {
	t.fires(l3.deny, "L3.channel_not_granted") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.context as {"channel": {"id": "a2a-http", "authenticated": true, "encrypted": true}}
}

test_channel_not_granted_denies_an_agent_without_channels if {
	t.fires(l3.deny, "L3.channel_not_granted") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with input.context as {"channel": {"id": "a2a-mtls", "authenticated": true, "encrypted": true}}
}

test_channel_not_granted_allows_a_granted_channel if {
	d := l3.deny with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.context as {"channel": {"id": "a2a-mtls", "authenticated": true, "encrypted": true}}
	not t.fires(d, "L3.channel_not_granted")
	not t.fires(d, "L3.channel_insecure")
}

test_channel_not_granted_allows_a_channel_granted_for_every_peer if {
	not t.fires(l3.deny, "L3.channel_not_granted") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/coder"
		with input.context as {"channel": {"id": "a2a-mtls", "authenticated": true, "encrypted": true}}
}

test_channel_insecure_denies_an_unauthenticated_or_undeclared_channel if {
	t.fires(l3.deny, "L3.channel_insecure") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.context as {"channel": {"id": "a2a-mtls", "authenticated": false, "encrypted": true}}
	t.fires(l3.deny, "L3.channel_insecure") with input.kind as "delegation"
		with input.subject as {"id": t.analyst_security}
		with input.delegatee as "spiffe://corp.example/agent/reporter"
		with input.context as {"channel": {"id": "a2a-mtls"}}
}

# --- per-session stores (T31) ------------------------------------------------------------

test_cross_session_read_denies_a_store_the_session_did_not_write if {
	t.fires(l3.deny, "L3.cross_session_read") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security, "session_id": "s-2"}
		with input.source as {"type": "store", "id": "analyst-scratch"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with input.operation as "read"
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "read", "source": "analyst-scratch", "destination": t.analyst_security, "decision": "allow"}]}}
}

test_cross_session_read_allows_what_the_session_wrote if {
	not t.fires(l3.deny, "L3.cross_session_read") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.source as {"type": "store", "id": "analyst-scratch"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with input.operation as "read"
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "write", "source": "kb-vectors", "destination": "analyst-scratch", "decision": "allow"}]}}
}

test_cross_session_read_allows_a_session_shared_store if {
	not t.fires(l3.deny, "L3.cross_session_read") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with input.operation as "read"
}

test_cross_session_read_counts_a_write_tool_on_the_store if {
	not t.fires(l3.deny, "L3.cross_session_read") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "analyst-scratch"}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "agent_action", "action": "memory_write", "target": "analyst-scratch", "decision": "allow"}]}}
	t.fires(l3.deny, "L3.cross_session_read") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security, "session_id": "s-1"}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "analyst-scratch"}
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "agent_action", "action": "kb_search", "target": "analyst-scratch", "decision": "allow"}]}}
}

test_cross_session_read_denies_a_per_session_store_without_a_session if {
	d := l3.deny with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.source as {"type": "store", "id": "kb-vectors"}
		with input.destination as {"type": "store", "id": "analyst-scratch"}
		with input.operation as "write"
	some r in d
	r.rule == "L3.cross_session_read"
	contains(r.message, "without a session id")
}
