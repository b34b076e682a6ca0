package maestro.layers.l5_evaluation_observability_test

import rego.v1

import data.maestro.layers.l5_evaluation_observability as l5
import data.maestro.testing as t

test_trace_id_required_denies_side_effect_without_trace if {
	t.fires(l5.deny, "L5.trace_id_required") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"task_id": "task-1"}
}

test_trace_id_required_denies_sensitive_read_without_trace if {
	t.fires(l5.deny, "L5.trace_id_required") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "internal", "contains_pii": true}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
}

test_trace_id_required_allows_traced_request if {
	not t.fires(l5.deny, "L5.trace_id_required") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_trace_id_required_allows_plain_read_without_trace if {
	not t.fires(l5.deny, "L5.trace_id_required") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
}

test_approval_queue_overloaded_denies_new_escalation if {
	t.fires(l5.deny, "L5.approval_queue_overloaded") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "merge_pull_request"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
		with input.state as {"pending_approvals": 50}
}

test_approval_queue_overloaded_allows_below_limit if {
	not t.fires(l5.deny, "L5.approval_queue_overloaded") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "merge_pull_request"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
		with input.state as {"pending_approvals": 49}
}

test_approval_queue_overloaded_allows_request_needing_no_human if {
	not t.fires(l5.deny, "L5.approval_queue_overloaded") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "repo_read"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
		with input.state as {"pending_approvals": 500}
}

test_propagate_trace_obligation_on_delegation if {
	some o in l5.obligations with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/analyst-security"
		with input.task as {"goal": "triage", "scopes": ["kb:read"]}
		with input.ttl_seconds as 600
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
	o.rule == "L5.propagate_trace"
	o.params.trace_id == "trace-1"
}
