# L3 Agent Frameworks: per-agent tool allowlists with argument constraints, the reflection
# depth cap, plans checked against the goal's scopes, and the review gate for generated code.
package maestro.layers.l3_agent_frameworks

import rego.v1

import data.maestro.lib

layer := "l3_agent_frameworks"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

agent_tools := object.get(lib.agent, "tools", {})

# METADATA
# title: Tool not on the agent's allowlist
# description: The agent calls a tool or operation its registry entry does not grant.
# custom:
#   rule: L3.tool_not_allowlisted
#   layer: l3_agent_frameworks
#   threats: [T2, T3]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason("L3.tool_not_allowlisted", ["T2", "T3"], msg) if {
	lib.is_action
	lib.agent
	not agent_tools[input.action]
	msg := sprintf("agent %s may not call tool %s (allowed: %v)", [input.subject.id, input.action, sort(object.keys(agent_tools))])
}

arguments := object.get(input, "arguments", {})

arg_specs := object.get(agent_tools, [input.action, "args"], {}) if lib.is_action

# Each constraint kind on an argument: allowed (list of values), prefixes (string prefixes),
# max (numeric ceiling), pattern (regular expression), required (must be present); and
# `strict: true` on the tool entry forbids arguments the entry does not name.
violations contains sprintf("argument %s=%v is not one of %v", [name, value, allowed]) if {
	some name, spec in arg_specs
	value := arguments[name]
	allowed := spec.allowed
	not value in allowed
}

violations contains sprintf("argument %s=%v does not start with any of %v", [name, value, prefixes]) if {
	some name, spec in arg_specs
	value := arguments[name]
	prefixes := spec.prefixes
	not prefixed(value, prefixes)
}

violations contains sprintf("argument %s=%v exceeds the maximum %v", [name, value, ceiling]) if {
	some name, spec in arg_specs
	value := arguments[name]
	ceiling := spec.max
	not within(value, ceiling)
}

violations contains sprintf("argument %s=%v does not match %s", [name, value, pattern]) if {
	some name, spec in arg_specs
	value := arguments[name]
	pattern := spec.pattern
	not matches(value, pattern)
}

violations contains sprintf("required argument %s is missing", [name]) if {
	some name, spec in arg_specs
	spec.required == true
	not name in object.keys(arguments)
}

violations contains sprintf("argument %s is not permitted for this tool", [name]) if {
	object.get(agent_tools, [input.action, "strict"], false) == true
	some name, _ in arguments
	not arg_specs[name]
}

prefixed(value, prefixes) if {
	is_string(value)
	strings.any_prefix_match(value, prefixes)
}

within(value, ceiling) if {
	is_number(value)
	value <= ceiling
}

matches(value, pattern) if {
	is_string(value)
	regex.match(pattern, value)
}

# METADATA
# title: Tool argument outside the agent's constraints
# description: An allowlisted tool is called with an argument its per-agent constraint forbids.
# custom:
#   rule: L3.tool_argument_violation
#   layer: l3_agent_frameworks
#   threats: [T2]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason("L3.tool_argument_violation", ["T2"], msg) if {
	agent_tools[input.action]
	some v in violations
	msg := sprintf("agent %s calling %s: %s", [input.subject.id, input.action, v])
}

reflection_cap := object.get(lib.thresholds, "reflection_depth_cap", 5)

# METADATA
# title: Reflection depth above the cap
# description: The agent has run more reflection or critique-revise cycles than the cap allows.
# custom:
#   rule: L3.reflection_depth_exceeded
#   layer: l3_agent_frameworks
#   threats: [T6, T4]
#   mitigations: [reflection_loop_depth_cap]
deny contains reason("L3.reflection_depth_exceeded", ["T6", "T4"], msg) if {
	depth := input.context.reflection_depth
	depth > reflection_cap
	msg := sprintf("agent %s is at reflection depth %d, above the cap of %d", [input.subject.id, depth, reflection_cap])
}

goal_scopes := {s | some s in input.context.goal_scopes}

# METADATA
# title: Plan reaches outside the goal's scope
# description: A step of the declared plan names a scope the goal does not grant.
# custom:
#   rule: L3.plan_outside_goal_scope
#   layer: l3_agent_frameworks
#   threats: [T6, T2]
#   mitigations: [plan_vs_goal_validation]
deny contains reason("L3.plan_outside_goal_scope", ["T6", "T2"], msg) if {
	some step in input.context.plan
	scope := step.scope
	not scope in goal_scopes
	msg := sprintf("plan step %s of agent %s uses scope %s, outside the goal's scopes %v", [step.action, input.subject.id, scope, sort([s | some s in goal_scopes])])
}

# METADATA
# title: Generated code runs without review
# description: >-
#   A code-execution tool runs code the agent generated (or code of unknown origin) that has
#   not passed a review gate; a human reviewer must approve it.
# custom:
#   rule: L3.code_review_required
#   layer: l3_agent_frameworks
#   threats: [T11]
#   mitigations: [code_generation_review_gate]
hitl contains reason("L3.code_review_required", ["T11"], msg) if {
	lib.tool_risk == "code_exec"
	unreviewed
	msg := sprintf("agent %s runs %s with unreviewed %s code", [input.subject.id, input.action, origin])
}

unreviewed if not input.code

unreviewed if {
	input.code.generated == true
	not input.code.reviewed == true
}

origin := "generated" if input.code.generated == true

else := "undeclared"

obligations := set()
