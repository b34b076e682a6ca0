# Cross-Layer: threats that exist only because agents delegate to and feed each other —
# delegation outside the declared topology, confused deputies, runaway or cyclic chains,
# and sensitive data leaking across a chain of individually acceptable hops.
#
# Cost on rego-cpp (see policies/README.md, "Performance"): most requests carry no
# delegation chain and trip nothing here, so every rule body starts with a cheap test that rules
# it out (`lib.is_delegation`, `chained`, `lib.outbound_external`), and built-in calls (count, comparisons,
# membership, object.get) sit after it. Helper booleans have `default ... := false`: rego-cpp
# memoises a rule's value only when it is defined, and re-evaluates an undefined one on every
# reference.
package maestro.layers.cross_layer

import rego.v1

import data.maestro.lib

layer := "cross_layer"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

kinds := {"agent_action", "data_movement", "delegation"}

# The request carries a delegation chain: a scan, where count() would be a built-in call and a
# bare hop as a condition an object comparison.
# `input.kind in kinds`, as comparisons rather than a membership built-in.
default known_kind := false

known_kind if input.kind == "agent_action"

known_kind if input.kind == "data_movement"

known_kind if input.kind == "delegation"

# METADATA
# title: Unknown request kind
# description: The request is of a kind the policy does not decide; the default is deny.
# custom:
#   rule: CL.unknown_request_kind
#   layer: cross_layer
#   threats: [T24]
#   mitigations: [policy_bound_autonomy]
deny contains reason("CL.unknown_request_kind", ["T24"], msg) if {
	not known_kind
	msg := sprintf("request kind %v is not one the policy decides", [object.get(input, "kind", "(none)")])
}

chain := lib.chain

# METADATA
# title: Delegation outside the declared topology
# description: A delegation edge (requested, or in the chain so far) is not among the delegator's declared delegatees.
# custom:
#   rule: CL.delegation_not_in_topology
#   layer: cross_layer
#   threats: [T12, T13, T3]
#   mitigations: [communication_topology_allowlist, trust_scoring]
deny contains reason("CL.delegation_not_in_topology", ["T12", "T13", "T3"], msg) if {
	# The requested edge; the body below checks each hop of the chain (an edge in both gives
	# the same reason once). The delegator's entry is bound (`_ =`), not tested as a bare
	# object (rego-cpp would compare it with false by serialising it), and object.get is
	# avoided because it copies its argument.
	lib.is_delegation
	_ = lib.agent
	to := input.delegatee
	not delegatee_declared
	msg := sprintf("agent %s may not delegate to %s: the edge is not in the declared topology", [input.subject.id, to])
}

deny contains reason("CL.delegation_not_in_topology", ["T12", "T13", "T3"], msg) if {
	# Each hop of the chain. The delegator is bound by `:=` first so the registry is looked up
	# by key instead of scanned.
	some i, hop in lib.chain
	from := hop.delegator
	to := hop.delegatee
	_ = lib.agents[from]
	not declared_hops[i]
	msg := sprintf("agent %s may not delegate to %s: the edge is not in the declared topology", [from, to])
}

# The requested edge, and the chain's hops by index, that the delegator's `delegatees` list.
# Scans, never a negated `to in ....delegatees`: for an entry without `delegatees` OPA makes
# that negation undefined (every edge would pass) where rego-cpp makes it true.
default delegatee_declared := false

delegatee_declared if {
	some d in lib.agent.delegatees
	d == input.delegatee
}

declared_hops contains i if {
	some i, hop in lib.chain
	some d in lib.agents[hop.delegator].delegatees
	d == hop.delegatee
}

# The scopes the subject holds: its registered scopes, narrowed to what its parent hop granted.
registered_scopes := {s | some s in object.get(lib.entry, "scopes", [])}

held_scopes := registered_scopes & {s | some s in lib.parent_hop.scopes} if lib.chained

else := registered_scopes

# Whether the delegation asks for a scope outside held_scopes, with one object.subset call per
# scope list rather than building held_scopes (which only the message needs). Both operands
# are sets: object.subset([], set()) is false on OPA and true on rego-cpp, and rego-cpp
# crashes on two empty arrays.
task_scopes := {s | some s in input.task.scopes}

default registered_scope_list := []

registered_scope_list := lib.entry.scopes

default scopes_exceed_held := false

scopes_exceed_held if not object.subset({s | some s in registered_scope_list}, task_scopes)

scopes_exceed_held if {
	lib.chained
	not object.subset({s | some s in object.get(lib.parent_hop, "scopes", [])}, task_scopes)
}

# METADATA
# title: Delegated scopes not a subset of the delegator's
# description: >-
#   A delegation hands over scopes the delegator does not hold (registered scopes narrowed by
#   its own parent hop), or a hop of the chain widened its parent's scopes: a confused deputy.
# custom:
#   rule: CL.scope_escalation
#   layer: cross_layer
#   threats: [T3]
#   mitigations: [time_bounded_privilege, least_privilege_tool_scoping]
deny contains reason("CL.scope_escalation", ["T3"], msg) if {
	lib.is_delegation
	scopes_exceed_held
	extra := {s | some s in input.task.scopes} - held_scopes
	count(extra) > 0
	msg := sprintf("agent %s delegates scopes %v to %s that it does not hold itself", [input.subject.id, sort([s | some s in extra]), input.delegatee])
}

deny contains reason("CL.scope_escalation", ["T3"], msg) if {
	some i, hop in lib.chain
	i > 0
	extra := {s | some s in hop.scopes} - {s | some s in chain[i - 1].scopes}
	count(extra) > 0
	msg := sprintf("chain hop %d (%s to %s) widens its parent's scopes with %v", [i, hop.delegator, hop.delegatee, sort([s | some s in extra])])
}

# Registry thresholds are read by path with defaults: object.get would copy the section.
default max_chain := 4

max_chain := lib.thresholds.max_chain_depth

# count(chain), without the built-in call when there is no chain.
chain_length := lib.chain_length if lib.chained

else := 0

# The depth the request reaches: a delegation adds a hop to the chain.
depth := 1 if {
	lib.is_delegation
	not lib.chained
} else := chain_length + 1 if lib.is_delegation

else := chain_length

# METADATA
# title: Delegation chain too deep
# description: The chain exceeds the registry's maximum depth, or the delegator's own maximum delegation depth.
# custom:
#   rule: CL.chain_depth_exceeded
#   layer: cross_layer
#   threats: [T4, T3]
#   mitigations: [per_agent_quota_budgets]
deny contains reason("CL.chain_depth_exceeded", ["T4", "T3"], msg) if {
	depth > max_chain
	msg := sprintf("delegation chain depth %d exceeds the maximum of %d", [depth, max_chain])
}

deny contains reason("CL.chain_depth_exceeded", ["T4", "T3"], msg) if {
	lib.is_delegation
	own := lib.agent.max_delegation_depth
	depth > own
	msg := sprintf("agent %s may delegate up to depth %d, and this delegation reaches depth %d", [input.subject.id, own, depth])
}

# The agents along the path, in order: the chain's root, each delegatee, and the new delegatee.
path := array.concat([chain[0].delegator], [hop.delegatee | some hop in chain]) if lib.chained

else := [input.subject.id]

full_path := array.concat(path, [input.delegatee]) if lib.is_delegation

else := path

# An agent appears twice on full_path. Without a chain the path is the subject alone, or the
# subject and its delegatee, so one comparison answers without building the path.
default path_revisits := false

path_revisits if {
	not lib.chained
	lib.is_delegation
	input.subject.id == input.delegatee
}

path_revisits if {
	lib.chained
	count({a | some a in full_path}) < count(full_path)
}

# METADATA
# title: Delegation cycle
# description: An agent appears twice on the delegation path, so work (and any injected content) is circling back.
# custom:
#   rule: CL.delegation_cycle
#   layer: cross_layer
#   threats: [T4, T12, T5]
#   mitigations: [per_agent_quota_budgets, multi_agent_consensus]
deny contains reason("CL.delegation_cycle", ["T4", "T12", "T5"], msg) if {
	path_revisits
	repeated := {a | a := full_path[i]; full_path[j] == a; j > i}
	msg := sprintf("delegation path %v revisits %v", [full_path, sort([a | some a in repeated])])
}

# METADATA
# title: Delegation chain does not connect
# description: Consecutive hops do not link, or the last hop's delegatee is not the subject, so the chain was forged or spliced.
# custom:
#   rule: CL.chain_discontinuous
#   layer: cross_layer
#   threats: [T9, T12]
#   mitigations: [message_signing, workload_identity]
deny contains reason("CL.chain_discontinuous", ["T9", "T12"], msg) if {
	some i, hop in lib.chain
	i > 0
	hop.delegator != chain[i - 1].delegatee
	msg := sprintf("chain hop %d starts at %s but the previous hop ended at %s", [i, hop.delegator, chain[i - 1].delegatee])
}

deny contains reason("CL.chain_discontinuous", ["T9", "T12"], msg) if {
	lib.chained
	last := lib.parent_hop.delegatee
	last != input.subject.id
	msg := sprintf("the chain ends at %s but the request comes from %s", [last, input.subject.id])
}

default max_ttl := 86400

max_ttl := lib.thresholds.max_delegation_ttl_seconds

# The parent hop's TTL capped at the maximum, compared with `<`: rego-cpp's min and max of
# numbers compare their texts (min({9795, 86400}) is 86400 there).
parent_ttl := ttl if {
	lib.chained
	ttl := object.get(lib.parent_hop, "ttl_seconds", max_ttl)
	ttl < max_ttl
} else := max_ttl

# METADATA
# title: Delegation outlives its parent
# description: >-
#   A delegation asks for a TTL longer than the hop that handed the delegator its task (or, at
#   the root, longer than the registry maximum); a chain hop outlives its parent likewise.
# custom:
#   rule: CL.ttl_exceeds_parent
#   layer: cross_layer
#   threats: [T3]
#   mitigations: [time_bounded_privilege]
deny contains reason("CL.ttl_exceeds_parent", ["T3"], msg) if {
	lib.is_delegation
	input.ttl_seconds > parent_ttl
	msg := sprintf("delegation to %s asks for %ds, longer than its parent's %ds", [input.delegatee, input.ttl_seconds, parent_ttl])
}

deny contains reason("CL.ttl_exceeds_parent", ["T3"], msg) if {
	some i, hop in lib.chain
	i > 0
	hop.ttl_seconds > chain[i - 1].ttl_seconds
	msg := sprintf("chain hop %d lasts %ds, longer than its parent's %ds", [i, hop.ttl_seconds, chain[i - 1].ttl_seconds])
}

# lib.rank(c) >= lib.restricted_rank with at most one built-in call: a label the registry does
# not rank counts as restricted (lib.rank fails safe); a ranked one is compared with
# "restricted", and is never restricted when the registry does not rank "restricted" (which
# then ranks with the unknown labels, above every ranked one).
restricted_class(c) if not lib.ranks[c]

restricted_class(c) if lib.ranks[c] >= lib.ranks.restricted

restricted_origins contains p if {
	some p in lib.origins
	restricted_class(lib.stores[p].classification)
}

restricted_origins contains label if {
	lib.is_movement
	some label in input.data.labels
	label == "restricted"
}

default has_restricted_origin := false

has_restricted_origin if {
	some _ in restricted_origins
}

# METADATA
# title: Restricted provenance flowing to an external destination
# description: Data that passed through a restricted store (or is labelled restricted) is sent outside, whatever its current label says.
# custom:
#   rule: CL.restricted_provenance_to_external
#   layer: cross_layer
#   threats: [T28]
#   mitigations: [output_egress_dlp, data_classification]
deny contains reason("CL.restricted_provenance_to_external", ["T28"], msg) if {
	lib.outbound_external
	has_restricted_origin
	msg := sprintf("%s sends data with restricted provenance %v to external destination %s", [input.subject.id, sort([p | some p in restricted_origins]), lib.outbound_to])
}

# Restricted reads earlier in the session (or chain) that the gate did not refuse.
restricted_reads contains sprintf("%v %v", [object.get(e, "action", object.get(e, "kind", "request")), e.classification]) if {
	some e in lib.recent
	restricted_class(e.classification)
	not e.decision == "deny"
}

# ... and those whose source or target is a store the registry classifies restricted (or not at
# all: "" is no level, so restricted_class holds), whatever label the caller gave the data.
restricted_reads contains sprintf("%v %v", [object.get(e, "action", object.get(e, "kind", "request")), store]) if {
	some e in lib.recent
	some field in ["source", "target"]
	store := e[field]
	restricted_class(object.get(lib.stores[store], "classification", ""))
	not e.decision == "deny"
}

default has_restricted_read := false

has_restricted_read if {
	some _ in restricted_reads
}

# METADATA
# title: External send after a restricted read in the session
# description: >-
#   The subject (typically a delegate) sends data to an external destination after something
#   earlier in its session or chain read restricted data: a leak assembled from allowed steps.
# custom:
#   rule: CL.restricted_session_to_external
#   layer: cross_layer
#   threats: [T28, T3]
#   mitigations: [output_egress_dlp]
deny contains reason("CL.restricted_session_to_external", ["T28", "T3"], msg) if {
	lib.outbound_external
	has_restricted_read
	msg := sprintf("%s sends data to external %s after its session read restricted data: %v", [input.subject.id, lib.outbound_to, sort([r | some r in restricted_reads])])
}

# hitl: CL.chain_autonomy_exceeded (pivot.rego).

obligations := set()
