package maestro.layers.l3_agent_frameworks_test

import rego.v1

import data.maestro.layers.l3_agent_frameworks as l3
import data.maestro.testing as t

test_tool_not_allowlisted_denies if {
	t.fires(l3.deny, "L3.tool_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "file_write"
		with input.arguments as {"path": "/tmp/exfil.txt"}
}

test_tool_not_allowlisted_allows_granted_tool if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.arguments as {"path": "reports/weekly.md"}
	not t.fires(d, "L3.tool_not_allowlisted")
	count(d) == 0
}

test_tool_argument_violation_denies_disallowed_value if {
	t.fires(l3.deny, "L3.tool_argument_violation") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.arguments as {"table": "hr_salaries"}
}

test_tool_argument_violation_denies_prefix_and_max if {
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.collector_web}
		with input.action as "http_fetch"
		with input.arguments as {"url": "file:///etc/passwd", "method": "POST"}
	count([r | some r in d; r.rule == "L3.tool_argument_violation"]) == 2
}

test_tool_argument_violation_denies_pattern_required_and_strict if {
	t.fires(l3.deny, "L3.tool_argument_violation") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.arguments as {"path": "../../etc/cron.d/x"}
	t.fires(l3.deny, "L3.tool_argument_violation") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "doc_write"
		with input.arguments as {}
	t.fires(l3.deny, "L3.tool_argument_violation") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "sql_query"
		with input.arguments as {"table": "incidents", "raw_sql": "DROP TABLE incidents"}
	t.fires(l3.deny, "L3.tool_argument_violation") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "sql_query"
		with input.arguments as {"table": "incidents", "max_rows": 50000}
}

test_tool_argument_violation_allows_constrained_arguments if {
	not t.fires(l3.deny, "L3.tool_argument_violation") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "sql_query"
		with input.arguments as {"table": "incidents", "max_rows": 100}
}

test_reflection_depth_exceeded_denies if {
	t.fires(l3.deny, "L3.reflection_depth_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "web_search"
		with input.context as {"reflection_depth": 6}
}

test_reflection_depth_exceeded_allows_at_cap if {
	not t.fires(l3.deny, "L3.reflection_depth_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "web_search"
		with input.context as {"reflection_depth": 5}
}

test_reflection_depth_exceeded_follows_registry_cap if {
	t.fires(l3.deny, "L3.reflection_depth_exceeded") with input.kind as "agent_action"
		with input.subject as {"id": t.researcher}
		with input.action as "web_search"
		with input.context as {"reflection_depth": 3}
		with data.maestro.registry.thresholds.reflection_depth_cap as 2
}

test_plan_outside_goal_scope_denies if {
	t.fires(l3.deny, "L3.plan_outside_goal_scope") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.context as {
			"goal": "summarise open incidents",
			"goal_scopes": ["kb:read", "analysis:read"],
			"plan": [{"action": "kb_search", "scope": "kb:read"}, {"action": "email_send", "scope": "mail:send"}],
		}
}

test_plan_outside_goal_scope_is_one_reason_counting_the_steps if {
	plan_reasons := [r | some r in l3.deny; r.rule == "L3.plan_outside_goal_scope"] with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.context as {
			"goal_scopes": ["kb:read"],
			"plan": [{"action": "email_send", "scope": "mail:send"}, {"action": "kb_search", "scope": "kb:read"}, {"action": "sql_query", "scope": "analysis:read"}],
		}
	count(plan_reasons) == 1
	startswith(plan_reasons[0].message, "2 step(s) of the plan")
	contains(plan_reasons[0].message, "the first email_send with scope mail:send")
}

test_plan_outside_goal_scope_allows_plan_within_goal if {
	not t.fires(l3.deny, "L3.plan_outside_goal_scope") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.context as {
			"goal": "summarise open incidents",
			"goal_scopes": ["kb:read", "analysis:read"],
			"plan": [{"action": "kb_search", "scope": "kb:read"}, {"action": "sql_query", "scope": "analysis:read"}],
		}
}

test_code_review_required_escalates_generated_code if {
	t.fires(l3.hitl, "L3.code_review_required") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.code as {"generated": true, "reviewed": false}
}

test_code_review_required_escalates_undeclared_code if {
	t.fires(l3.hitl, "L3.code_review_required") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
}

test_code_review_required_allows_reviewed_code if {
	not t.fires(l3.hitl, "L3.code_review_required") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "python_exec"
		with input.code as {"generated": true, "reviewed": true, "review_id": "cr-7"}
}

test_tool_not_allowlisted_lists_allowed_tools_as_an_array if {
	# The message prints the allowlist as OPA does, on every engine (never as a set).
	d := l3.deny with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "file_write"
	some r in d
	r.message == `agent spiffe://corp.example/agent/reporter may not call tool file_write (allowed: ["doc_write", "report_publish", "sql_query"])`
}
