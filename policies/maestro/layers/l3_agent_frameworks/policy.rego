# L3 Agent Frameworks: per-agent tool allowlists with argument constraints, the reflection
# depth cap, plans checked against the goal's scopes, and the review gate for generated code.
package maestro.layers.l3_agent_frameworks

import rego.v1

import data.maestro.lib

layer := "l3_agent_frameworks"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# rego-cpp cost notes (regopy 1.5.2): each statement costs a few microseconds and each built-in
# call (object.get, object.keys, `in`, `>`, ...) more, and an object-valued condition
# (`lib.agent`, `not agent_tools[x]`, `not input.code`) makes the VM serialise the object. So
# bodies test the request kind first, values are looked up by path (`default`/`else` instead of
# object.get), membership is a `some` scan or a set lookup, and whether an object exists is
# tested by assigning it (`_ := ...`). In a body with a `some ... in` iteration, rego-cpp
# evaluates every expression that does not depend on the iteration before it (in reverse
# order), even when the iteration finds nothing: such bodies have a single guard.

# object.get(lib.agent, "tools", {}): undefined for an unregistered subject.
agent_tools := tools if {
	tools := lib.agent.tools
} else := {} if lib.registered

# The agent's registry entry lists the called tool.
default allowlisted := false

allowlisted if _ := agent_tools[input.action]

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
	not allowlisted
	lib.registered
	msg := sprintf("agent %s may not call tool %s (allowed: %v)", [input.subject.id, input.action, allowed_tools])
}

# The allowlist as a sorted array. sort() of a set (object.keys gives one) stays a set on
# rego-cpp, which prints {"a"} where OPA prints ["a"].
allowed_tools := sort([name | _ := agent_tools[name]])

default arguments := {}

arguments := input.arguments

# object.get(agent_tools, [input.action, "args"], {}); left undefined rather than {} when the
# entry has no constraints, which every use below treats the same.
arg_specs := agent_tools[input.action].args if lib.is_action

# Each constraint kind on an argument: allowed (list of values), prefixes (string prefixes),
# max (numeric ceiling), pattern (regular expression), required (must be present); and
# `strict: true` on the tool entry forbids arguments the entry does not name.
violations contains msg if {
	some name, spec in arg_specs
	value := arguments[name]
	some kind, bound in spec
	msg := violation(kind, name, value, bound)
}

violation("allowed", name, value, allowed) := sprintf("argument %s=%v is not one of %v", [name, value, allowed]) if not listed(value, allowed)

violation("prefixes", name, value, prefixes) := sprintf("argument %s=%v does not start with any of %v", [name, value, prefixes]) if not prefixed(value, prefixes)

violation("max", name, value, ceiling) := sprintf("argument %s=%v exceeds the maximum %v", [name, value, ceiling]) if not within(value, ceiling)

violation("pattern", name, value, pattern) := sprintf("argument %s=%v does not match %s", [name, value, pattern]) if not matches(value, pattern)

violations contains sprintf("required argument %s is missing", [name]) if {
	some name in required_args
	not given(name)
}

required_args contains name if {
	some name, spec in arg_specs
	spec.required == true
}

violations contains sprintf("argument %s is not permitted for this tool", [name]) if {
	strict
	some name, _ in arguments
	not specified(name)
}

default strict := false

strict if {
	lib.is_action
	agent_tools[input.action].strict == true
}

# `value in allowed`, as a scan.
listed(value, allowed) if {
	some v in allowed
	v == value
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

# The request has the argument (`name in object.keys(arguments)`, without the built-ins).
given(name) if _ := arguments[name]

# The tool entry names the argument.
specified(name) if _ := arg_specs[name]

# METADATA
# title: Tool argument outside the agent's constraints
# description: An allowlisted tool is called with an argument its per-agent constraint forbids.
# custom:
#   rule: L3.tool_argument_violation
#   layer: l3_agent_frameworks
#   threats: [T2]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason("L3.tool_argument_violation", ["T2"], msg) if {
	allowlisted
	some v in violations
	msg := sprintf("agent %s calling %s: %s", [input.subject.id, input.action, v])
}

# object.get(lib.thresholds, "reflection_depth_cap", 5), by lookup.
reflection_cap := cap if {
	cap := lib.thresholds.reflection_depth_cap
} else := 5

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

# A step of the plan names a scope outside the goal's (a set lookup rather than `in`).
default plan_outside_scope := false

plan_outside_scope if {
	some step in input.context.plan
	scope := step.scope
	not goal_scopes[scope]
}

# METADATA
# title: Plan reaches outside the goal's scope
# description: >-
#   A step of the declared plan names a scope the goal does not grant. One reason for the
#   whole plan, counting the steps outside and naming the first: a reason per step made the
#   decision's cost grow with the square of the steps on rego-cpp (200 steps: 147 ms, now 2 ms).
# custom:
#   rule: L3.plan_outside_goal_scope
#   layer: l3_agent_frameworks
#   threats: [T6, T2]
#   mitigations: [plan_vs_goal_validation]
deny contains reason("L3.plan_outside_goal_scope", ["T6", "T2"], msg) if {
	plan_outside_scope
	outside := [step | some step in input.context.plan; scope := step.scope; not goal_scopes[scope]]
	first := outside[0]
	msg := sprintf("%d step(s) of the plan of agent %s use scopes outside the goal's scopes %v, the first %s with scope %s", [count(outside), input.subject.id, sort([s | some s in goal_scopes]), first.action, first.scope])
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
	lib.is_action
	lib.tool_risk == "code_exec"
	unreviewed
	msg := sprintf("agent %s runs %s with unreviewed %s code", [input.subject.id, input.action, origin])
}

default unreviewed := false

unreviewed if not code_declared

unreviewed if {
	input.code.generated == true
	not input.code.reviewed == true
}

default code_declared := false

code_declared if _ := input.code

origin := "generated" if input.code.generated == true

else := "undeclared"

obligations := set()

# --- argument schemas (T41) ---------------------------------------------------------------

# A tool whose registry entry holds an `input_schema` has its arguments validated by the gate
# in Python (core/decision/arguments.py, the jsonschema library: rego-cpp lacks json.match_schema), which
# puts the outcome in `input.state.arguments`. An MCP tool (one on a registry `server`) must
# have a schema on record. Without an outcome for this very tool (a gate that could not check,
# or a caller-supplied state for another tool) the call is denied.
default schema_checked_tool := false

schema_checked_tool if {
	lib.is_action
	_ := lib.tools[input.action].input_schema
}

default schema_missing := false

schema_missing if {
	lib.is_action
	_ := lib.tools[input.action].server
	not schema_checked_tool
}

default arguments_match_schema := false

arguments_match_schema if {
	input.state.arguments.tool == input.action
	input.state.arguments.valid == true
}

schema_mismatch := sprintf("arguments of tool %s do not match its registry input_schema: %s", [input.action, input.state.arguments.errors[0]]) if {
	input.state.arguments.tool == input.action
	_ := input.state.arguments.errors[0]
} else := sprintf("arguments of tool %s were not checked against its registry input_schema", [input.action]) if lib.is_action

# METADATA
# title: Tool arguments do not match the tool's schema
# description: The arguments of a call fail the JSON Schema the registry holds for the tool, were not checked against it, or an MCP tool has no schema on record.
# custom:
#   rule: L3.tool_argument_schema_mismatch
#   layer: l3_agent_frameworks
#   threats: [T41]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason("L3.tool_argument_schema_mismatch", ["T41"], msg) if {
	schema_checked_tool
	not arguments_match_schema
	msg := schema_mismatch
}

deny contains reason("L3.tool_argument_schema_mismatch", ["T41"], msg) if {
	schema_missing
	msg := sprintf("MCP tool %s has no input_schema in the registry", [input.action])
}
