# Shared lookups for every layer package: the registry, the subject's registry entry,
# classification ranks, and the gate-supplied `input.state` with safe defaults.
#
# Policies read deployment facts only from `data.maestro.registry` (a deployer swaps that
# document), and treat any missing registry section or state field as the safe default.
package maestro.lib

import rego.v1

default registry := {}

registry := data.maestro.registry

agents := object.get(registry, "agents", {})

tools := object.get(registry, "tools", {})

stores := object.get(registry, "stores", {})

destinations := object.get(registry, "destinations", {})

thresholds := object.get(registry, "thresholds", {})

autonomy_classes := object.get(registry, "autonomy_classes", {})

# The subject's registry entry; undefined for an unregistered subject.
agent := agents[input.subject.id]

# The same entry, or {} for an unregistered subject, for lookups with defaults.
entry := object.get(agents, input.subject.id, {})

registered(id) if agents[id]

trust_min := object.get(thresholds, "trust_score_min", 0.6)

trust_of(id) := object.get(agents, [id, "trust_score"], 0)

# --- classification ---------------------------------------------------------------------

order := object.get(registry, "classification_order", ["public", "internal", "confidential", "restricted"])

ranks := {c: i | c := order[i]}

# A label the registry does not know ranks above the most sensitive level (fail safe) ...
rank(c) := object.get(ranks, c, count(order))

# ... while a clearance it does not know ranks below the least sensitive one.
clearance_rank(c) := object.get(ranks, c, -1)

restricted_rank := rank("restricted")

local_only_rank := rank(object.get(thresholds, "local_only_min_classification", "confidential"))

# --- the request ------------------------------------------------------------------------

ctx := object.get(input, "context", {})

chain := object.get(ctx, "delegation_chain", [])

# The hop that handed the subject its task, when the chain ends at the subject.
parent_hop := chain[count(chain) - 1]

is_action if input.kind == "agent_action"

is_movement if input.kind == "data_movement"

is_delegation if input.kind == "delegation"

# The risk class of the tool an agent_action calls; an unknown tool counts as irreversible.
tool := tools[input.action] if is_action

tool_risk := object.get(tools, [input.action, "risk_class"], "irreversible") if is_action

irreversible if {
	is_action
	input.reversible == false
}

irreversible if tool_risk == "irreversible"

side_effecting if {
	is_action
	tool_risk != "read"
}

side_effecting if {
	is_movement
	input.operation != "read"
}

side_effecting if is_delegation

# The classifications an agent_action's target carries: its own label and its store's.
target_classifications contains c if {
	is_action
	c := input.target.classification
}

target_classifications contains c if {
	is_action
	input.target.type == "store"
	c := stores[input.target.id].classification
}

max_target_rank := max({rank(c) | some c in target_classifications})

# Where the request sends something outside the organisation, when it does.
outbound_to := input.destination.id if {
	is_movement
	input.destination.type == "external"
} else := input.target.id if {
	is_action
	input.target.type == "external"
} else := input.action if {
	is_action
	tools[input.action].external == true
}

outbound_external if outbound_to

# --- provenance -------------------------------------------------------------------------

# A provenance entry is trusted when it is a registered agent at or above the trust minimum,
# or a registered store marked trusted_for_memory.
trusted_origin(p) if trust_of(p) >= trust_min

trusted_origin(p) if stores[p].trusted_for_memory == true

origins contains p if {
	is_movement
	some p in object.get(input.data, "provenance", [])
}

origins contains input.source.id if is_movement

untrusted_origins contains p if {
	some p in origins
	not trusted_origin(p)
}

# --- gate state -------------------------------------------------------------------------

state := object.get(input, "state", {})

pending_approvals := object.get(state, "pending_approvals", 0)

requests_in_window := object.get(state, ["agent", "requests_in_window"], 0)

window_seconds := object.get(state, ["agent", "window_seconds"], 60)

budget_spent := object.get(state, ["agent", "budget_spent"], 0)

recent := object.get(state, ["session", "recent"], [])

stopped_agents := object.get(state, ["emergency_stop", "agents"], [])

stopped_classes := object.get(state, ["emergency_stop", "classes"], [])

approval_granted if state.approval.status == "granted"

# A granted approval that does not say how many people approved counts as one approver.
approvals_given := object.get(state, ["approval", "approvals"], 1)

# A granted approval for this exact request satisfies an escalation when enough people approved.
satisfied(h) if {
	approval_granted
	approvals_given >= object.get(h, "approvers", 1)
}
