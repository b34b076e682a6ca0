package maestro.layers.l6_security_compliance_test

import rego.v1

import data.maestro.layers.l6_security_compliance as l6
import data.maestro.testing as t

test_autonomy_boundary_exceeded_escalates_open_ended_write if {
	t.fires(l6.hitl, "L6.autonomy_boundary_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "notes_write"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_autonomy_boundary_exceeded_allows_open_ended_read if {
	not t.fires(l6.hitl, "L6.autonomy_boundary_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "web_search"
}

test_autonomy_boundary_exceeded_allows_directed_write if {
	not t.fires(l6.hitl, "L6.autonomy_boundary_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_autonomy_boundary_exceeded_escalates_directed_code_exec if {
	t.fires(l6.hitl, "L6.autonomy_boundary_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "python_exec"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_directed_task_required_denies if {
	t.fires(l6.deny, "L6.directed_task_required") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.context as {"trace_id": "trace-1"}
}

test_directed_task_required_allows_open_ended_and_reads if {
	not t.fires(l6.deny, "L6.directed_task_required") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
	not t.fires(l6.deny, "L6.directed_task_required") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "repo_commit"
		with input.context as {"trace_id": "trace-1"}
}

test_irreversible_dual_control_needs_two_approvers if {
	some h in l6.hitl with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "merge_pull_request"
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
	h.rule == "L6.irreversible_dual_control"
	h.approvers == 2
}

test_irreversible_dual_control_follows_reversible_flag if {
	t.fires(l6.hitl, "L6.irreversible_dual_control") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.reversible as false
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_irreversible_dual_control_allows_reversible_write if {
	not t.fires(l6.hitl, "L6.irreversible_dual_control") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.reversible as true
		with input.context as {"task_id": "task-1", "trace_id": "trace-1"}
}

test_emergency_stop_agent_denies_subject_and_delegatee if {
	t.fires(l6.deny, "L6.emergency_stop_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "repo_read"
		with input.state as {"emergency_stop": {"agents": [t.coder]}}
	t.fires(l6.deny, "L6.emergency_stop_agent") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/coder"
		with input.state as {"emergency_stop": {"agents": [t.coder]}}
}

test_emergency_stop_agent_allows_other_agents if {
	not t.fires(l6.deny, "L6.emergency_stop_agent") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.state as {"emergency_stop": {"agents": [t.coder]}}
}

test_emergency_stop_class_denies if {
	t.fires(l6.deny, "L6.emergency_stop_class") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.state as {"emergency_stop": {"classes": ["collection"]}}
}

test_emergency_stop_class_allows_other_classes if {
	not t.fires(l6.deny, "L6.emergency_stop_class") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.state as {"emergency_stop": {"classes": ["collection"]}}
}

test_rate_limit_exceeded_denies if {
	# collector-web may make 300 requests a minute: 150 in a 30 s window is the limit.
	t.fires(l6.deny, "L6.rate_limit_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.state as {"agent": {"requests_in_window": 150, "window_seconds": 30}}
}

test_rate_limit_exceeded_allows_below_quota if {
	not t.fires(l6.deny, "L6.rate_limit_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.state as {"agent": {"requests_in_window": 149, "window_seconds": 30}}
}

test_budget_exhausted_denies if {
	t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.state as {"agent": {"budget_spent": 50}}
}

test_budget_exhausted_allows_remaining_budget if {
	not t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "repo_read"
		with input.state as {"agent": {"budget_spent": 150}}
}

# Issue 21 item 3: spent + this request's cost > limit; the registry's cost for a costed tool
# when the caller leaves it out or declares less. collector-web's budget is 50.
test_budget_denies_a_request_that_would_overdraw if {
	t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": 25}}
		with input.state as {"agent": {"budget_spent": 30}}
}

test_budget_allows_a_request_that_fits_exactly if {
	not t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": 20}}
		with input.state as {"agent": {"budget_spent": 30}}
}

test_budget_takes_the_registry_cost_when_the_caller_leaves_it_out if {
	t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.state as {"agent": {"budget_spent": 30}}
		with data.maestro.registry.tools.web_search.cost as 25
}

test_budget_takes_the_registry_cost_over_a_lower_declared_one if {
	t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": 1}}
		with input.state as {"agent": {"budget_spent": 30}}
		with data.maestro.registry.tools.web_search.cost as 25
}

test_budget_takes_a_declared_cost_above_the_registry_one if {
	t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": 25}}
		with input.state as {"agent": {"budget_spent": 30}}
		with data.maestro.registry.tools.web_search.cost as 1
}

test_budget_allows_a_costed_tool_within_the_budget if {
	not t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.state as {"agent": {"budget_spent": 30}}
		with data.maestro.registry.tools.web_search.cost as 20
}

test_budget_ignores_a_declared_cost_that_is_no_number if {
	not t.fires(l6.deny, "L6.budget_exhausted") with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": "999"}}
		with input.state as {"agent": {"budget_spent": 30}}
}

test_request_cost_is_the_higher_of_declared_and_registry if {
	l6.request_cost == 7 with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": 7}}
		with data.maestro.registry.tools.web_search.cost as 2.5
	l6.request_cost == 2.5 with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
		with input.context as {"attributes": {"cost": -4}}
		with data.maestro.registry.tools.web_search.cost as 2.5
	l6.request_cost == 0 with input.kind as "data_movement"
		with input.action as "web_search"
		with data.maestro.registry.tools.web_search.cost as 2.5
}

test_missing_state_is_safe_default if {
	d := l6.deny with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "web_search"
	not t.fires(d, "L6.rate_limit_exceeded")
	not t.fires(d, "L6.budget_exhausted")
	not t.fires(d, "L6.emergency_stop_agent")
}

test_emergency_stop_class_covers_the_delegatee if {
	t.fires(l6.deny, "L6.emergency_stop_class") with input.kind as "delegation"
		with input.subject as {"id": t.orchestrator}
		with input.delegatee as "spiffe://corp.example/agent/coder"
		with input.state as {"emergency_stop": {"classes": ["engineering"]}}
}
