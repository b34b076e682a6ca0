# Shared lookups for every layer package: the registry, the subject's registry entry,
# classification ranks, and the gate-supplied `input.state` with safe defaults.
#
# Policies read deployment facts only from `data.maestro.registry` (a deployer swaps that
# document), and treat any missing registry section or state field as the safe default.
package maestro.lib

import rego.v1

# Sections are referenced by path rather than copied out with object.get: rego-cpp copies a
# value handed to a built-in, which for the whole registry costs hundreds of microseconds.
# A registry without an agents section knows no agent: `{}`, never undefined (a negated
# comparison over an undefined value means something else on OPA than on rego-cpp).
default agents := {}

agents := data.maestro.registry.agents

tools := data.maestro.registry.tools

stores := data.maestro.registry.stores

destinations := data.maestro.registry.destinations

# The chains agents may transact on (chain id -> confirmations, contracts, bridge_to,
# dual_control_above); a registry without the section grants no chain.
default chains := {}

chains := data.maestro.registry.chains

default thresholds := {}

thresholds := data.maestro.registry.thresholds

default autonomy_classes := {}

autonomy_classes := data.maestro.registry.autonomy_classes

# The subject's registry entry; undefined for an unregistered subject.
agent := agents[input.subject.id]

# Whether the subject has a registry entry. Layers test this rather than `agent` itself: rego-cpp
# serialises an object used as a condition, and memoises only rules that are defined.
default registered := false

registered if _ := agent

# The same entry, or {} for an unregistered subject, for lookups with defaults.
default entry := {}

entry := agents[input.subject.id]

default trust_min := 0.6

trust_min := thresholds.trust_score_min



# --- classification ---------------------------------------------------------------------

default order := ["public", "internal", "confidential", "restricted"]

order := data.maestro.registry.classification_order

ranks := {c: i | c := order[i]}

unknown_rank := count(order)

# Functions here never touch `data` directly: in rego-cpp a function that reads the registry
# costs hundreds of microseconds per call, while a rule reading it is memoised.
# A label the registry does not know ranks above the most sensitive level (fail safe) ...
rank(c) := object.get(ranks, c, unknown_rank)

# ... while a clearance it does not know ranks below the least sensitive one.
clearance_rank(c) := object.get(ranks, c, -1)

restricted_rank := rank("restricted")

default local_only_rank := 2

local_only_rank := rank(thresholds.local_only_min_classification)

# --- the request ------------------------------------------------------------------------


# Input fields are read by path with `default`s rather than through object.get, which copies
# its argument in rego-cpp.
default ctx := {}

ctx := input.context

default chain := []

chain := input.context.delegation_chain

chain_length := count(chain)

# Whether the request carries a delegation chain.
default chained := false

chained if {
	some _ in chain
}

# The hop that handed the subject its task, when the chain ends at the subject.
parent_hop := chain[chain_length - 1]

default is_action := false

is_action if input.kind == "agent_action"

default is_movement := false

is_movement if input.kind == "data_movement"

default is_delegation := false

is_delegation if input.kind == "delegation"

# The risk class of the tool an agent_action calls; an unknown tool counts as irreversible.
tool := tools[input.action] if is_action

tool_risk := tools[input.action].risk_class if is_action

else := "irreversible" if is_action

# Whether the action's tool reaches the network: every tool but one the registry marks
# `network: false` (an unknown tool, or one whose entry says nothing, does).
default network_tool := false

network_tool if {
	is_action
	not offline_tool
}

default offline_tool := false

offline_tool if tools[input.action].network == false

# Whether the action's tool reads secrets: every tool but one the registry marks
# `reads_secrets: false` (an unknown tool, or one whose entry says nothing, does).
default secret_tool := false

secret_tool if {
	is_action
	not reads_no_secrets
}

default reads_no_secrets := false

reads_no_secrets if tools[input.action].reads_secrets == false

# Whether the action's tool transacts on a chain: every tool but one the registry gives a
# non-transacting risk class (read, write, irreversible, code_exec). An unknown tool, or an
# entry without a risk class, does, so its call must carry a transaction the registry grants:
# the gate learns what transacts from the registry, not from the caller's `transaction`.
default transacting := false

transacting if {
	is_action
	not non_transacting
}

default non_transacting := false

# (A lookup in a set, not a scan of an array literal: no built-in call, one lookup.)
non_transacting if non_transacting_risks[tools[input.action].risk_class]

non_transacting_risks := {"read", "write", "irreversible", "code_exec"}

# Whether a transacting call crosses to another chain (a bridge): an external destination.
default crossing := false

crossing if {
	transacting
	to := input.transaction.to_chain
	not to == input.transaction.chain
}

default irreversible := false

irreversible if {
	is_action
	input.reversible == false
}

irreversible if tool_risk == "irreversible"

default side_effecting := false

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

# A target the registry knows as a store carries the store's classification whatever type the
# caller gives it; a store without one is "unclassified", which ranks above every level.
target_classifications contains c if {
	is_action
	c := target_store_classification
}

target_store_classification := c if {
	c := stores[input.target.id].classification
} else := "unclassified" if {
	_ := stores[input.target.id]
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
} else := input.transaction.to_chain if crossing

default outbound_external := false

outbound_external if outbound_to

# --- provenance -------------------------------------------------------------------------

origins contains p if {
	is_movement
	some p in object.get(input.data, "provenance", [])
}

origins contains input.source.id if is_movement

# --- the data's effective classification ------------------------------------------------

# What the gate knows wins: a data movement's data ranks as the highest of its label and the
# registry classification of every origin the registry knows as a store (the source and every
# provenance entry, whatever type the caller gives them). A caller's label can only raise it.
# A store without a classification ranks above every level.
movement_ranks := {r | some c in movement_levels; r := object.get(ranks, c, unknown_rank)}

# The caller's label and the registry classification of every origin it knows as a store ("" for
# a store without one, which no order names). Two bodies: each rule body costs rego-cpp more than
# the lookups in it.
movement_levels contains input.data.classification if is_movement

movement_levels contains object.get(stores[p], "classification", "") if some p in origins

# The highest of movement_ranks, found by counting down from unknown_rank (without max():
# rego-cpp's min and max compare numbers' texts). The set is referenced once: rego-cpp compiles
# a copy of a rule for every reference under every `with`, so fan-out here multiplies.
data_rank := [r | some r in numbers.range(unknown_rank, 0); movement_ranks[r]][0]

# The effective classification's name, for messages: the level's name in the registry's order;
# above every level (an unknown label, a store without a classification) it is "unclassified".
data_label := order[data_rank] if is_movement

else := "unclassified" if is_movement

# A provenance entry is trusted when it is a registered agent at or above the trust minimum,
# or a registered store marked trusted_for_memory.
untrusted_origins contains p if {
	some p in origins
	not object.get(agents, [p, "trust_score"], 0) >= trust_min
	not stores[p].trusted_for_memory == true
}

# --- gate state -------------------------------------------------------------------------

default state := {}

state := input.state

default pending_approvals := 0

pending_approvals := input.state.pending_approvals

default requests_in_window := 0

requests_in_window := input.state.agent.requests_in_window

default window_seconds := 60

window_seconds := input.state.agent.window_seconds

default budget_spent := 0

budget_spent := input.state.agent.budget_spent

default recent := []

recent := input.state.session.recent

default stopped_agents := []

stopped_agents := input.state.emergency_stop.agents

default stopped_classes := []

stopped_classes := input.state.emergency_stop.classes

default approval_granted := false

approval_granted if input.state.approval.status == "granted"

# A granted approval that does not say how many people approved counts as one approver.
default approvals_given := 1

approvals_given := input.state.approval.approvals

# A granted approval for this exact request satisfies an escalation when enough people approved.
satisfied(h) if {
	approval_granted
	approvals_given >= object.get(h, "approvers", 1)
}
