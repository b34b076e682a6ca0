# L2 Data Operations: what may enter shared memory and vector stores, tenant isolation on
# retrieval, and classification-aware movement of data between agents, stores and tools.
package maestro.layers.l2_data_operations

import rego.v1

import data.maestro.lib

layer := "l2_data_operations"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# rego-cpp cost notes (regopy 1.5.2): each statement costs a few microseconds and each built-in
# call (object.get, `in`, `>`, count, ...) more, and an object-valued condition (`lib.agent`,
# `not stores[id]`) makes the VM serialise the object. So every body tests the request kind
# first, values are looked up by path (`else` instead of object.get), membership is a set lookup
# or a `some` scan, and a registry entry's existence is checked by assigning it (`_ := ...`) in
# a memoised rule; `not a == b` is a statement where `a != b` is a built-in call. In a body with
# a `some ... in` iteration, rego-cpp evaluates every expression that does not depend on the
# iteration (rule references, comprehensions, whole messages) before it, in reverse order, even
# when the iteration finds nothing: such bodies have a single memoised guard, saying whether the
# iteration will find anything, and messages that do not depend on the iteration are built in
# bodies without one.

writes := {"write", "copy", "export", "memory_write"}

# A data movement whose operation writes (a set lookup rather than `in`).
default is_write := false

is_write if {
	lib.is_movement
	writes[input.operation]
}

# The registry entries of the stores a request names, each looked up once.
dest_store := lib.stores[input.destination.id] if {
	lib.is_movement
	input.destination.type == "store"
}

source_store := lib.stores[input.source.id] if {
	lib.is_movement
	input.source.type == "store"
}

target_store := lib.stores[input.target.id] if {
	lib.is_action
	input.target.type == "store"
}

# lib.rank and lib.clearance_rank, by lookup instead of object.get: a label the registry does
# not know ranks above every level, a clearance it does not know below every level.
rank(c) := r if {
	r := lib.ranks[c]
} else := lib.unknown_rank

clearance_rank(c) := r if {
	r := lib.ranks[c]
} else := -1

# METADATA
# title: Memory write from untrusted provenance
# description: >-
#   Data whose provenance includes an unregistered, low-trust or untrusted-store origin is
#   written into agent memory or into a store other agents trust as memory.
# custom:
#   rule: L2.memory_write_untrusted_provenance
#   layer: l2_data_operations
#   threats: [T1, T18, T27]
#   mitigations: [memory_content_validation, memory_poisoning_defence]
deny contains reason("L2.memory_write_untrusted_provenance", ["T1", "T18", "T27"], msg) if {
	memory_write
	untrusted_origin
	msg := sprintf("%s writes into memory %s data that passed through untrusted origins %v", [input.subject.id, input.destination.id, sort([p | some p in untrusted_origins])])
}

default memory_write := false

memory_write if {
	lib.is_movement
	input.operation == "memory_write"
}

memory_write if {
	is_write
	dest_store.trusted_for_memory == true
}

default untrusted_origin := false

untrusted_origin if some _ in untrusted_origins

# lib.untrusted_origins without its object.get over the agent registry (which copies the
# registry per origin): an origin is trusted when it is a store trusted as memory, or a
# registered agent whose trust score (0 when it has none) reaches the minimum.
untrusted_origins contains p if {
	some p in lib.origins
	not lib.stores[p].trusted_for_memory == true
	not trusted_scored[p]
	not trusted_unscored[p]
}

# Origins that are registered agents at or above the trust minimum. A set, never a negated
# `lib.agents[p].trust_score >= lib.trust_min`: for an origin that is no agent OPA makes that
# negation undefined (the origin would pass as trusted) where rego-cpp makes it true.
trusted_scored contains p if {
	some p in lib.origins
	lib.agents[p].trust_score >= lib.trust_min
}

# Origins without a trust score, which count as 0: trusted only under a minimum of 0 or less.
trusted_unscored contains p if {
	unscored_trusted
	some p in lib.origins
	not scored[p]
}

default unscored_trusted := false

unscored_trusted if 0 >= lib.trust_min

scored contains p if {
	some p in lib.origins
	_ := lib.agents[p].trust_score
}

# METADATA
# title: Agent may not write to the store
# description: The destination store declares its writers and the subject is not one of them.
# custom:
#   rule: L2.store_writer_not_allowed
#   layer: l2_data_operations
#   threats: [T1, T5, T12]
#   mitigations: [memory_poisoning_defence, permission_aware_retrieval]
deny contains reason("L2.store_writer_not_allowed", ["T1", "T5", "T12"], msg) if {
	is_write
	allowed := dest_store.writers
	not listed_writer
	msg := sprintf("%s may not write to store %s (writers: %v)", [input.subject.id, input.destination.id, allowed])
}

# The subject is among the destination store's writers (a scan rather than `in`).
default listed_writer := false

listed_writer if {
	some w in dest_store.writers
	w == input.subject.id
}

# METADATA
# title: Unregistered store
# description: A data movement names a store the registry does not know, so its classification and tenant are unknown.
# custom:
#   rule: L2.unregistered_store
#   layer: l2_data_operations
#   threats: [T1, T28]
#   mitigations: [data_classification]
deny contains reason("L2.unregistered_store", ["T1", "T28"], msg) if {
	some id in unregistered_stores
	msg := sprintf("store %s is not in the registry; its classification and tenant are unknown", [id])
}

# The stores at either end of a data movement that the registry does not know, one body per
# end (an iteration over both ends would look both up in the registry before testing either).
unregistered_stores contains input.source.id if {
	lib.is_movement
	input.source.type == "store"
	not source_store_known
}

unregistered_stores contains input.destination.id if {
	lib.is_movement
	input.destination.type == "store"
	not dest_store_known
}

default source_store_known := false

source_store_known if _ := source_store

default dest_store_known := false

dest_store_known if _ := dest_store

# object.get(lib.entry, "tenant", lib.default_tenant), by lookup (lib.entry is lib.agent or {}).
agent_tenant := t if {
	t := lib.agent.tenant
} else := lib.default_tenant

# t is the tenant of someone other than the subject, which must be registered.
foreign(t) if {
	not t == agent_tenant
	not t == "*"
	lib.registered
}

read_tenants contains t if {
	lib.is_movement
	t := input.data.tenant
}

read_tenants contains source_store.tenant

read_tenants contains t if {
	lib.is_action
	t := input.target.tenant
}

read_tenants contains target_store.tenant

# METADATA
# title: Cross-tenant retrieval
# description: The subject reads data or a store that belongs to another tenant.
# custom:
#   rule: L2.cross_tenant_retrieval
#   layer: l2_data_operations
#   threats: [T28, T3]
#   mitigations: [permission_aware_retrieval]
deny contains reason("L2.cross_tenant_retrieval", ["T28", "T3"], msg) if {
	foreign_read
	some t in read_tenants
	foreign(t)
	msg := sprintf("%s (tenant %s) reaches data of tenant %s", [input.subject.id, agent_tenant, t])
}

# Some tenant in read_tenants is foreign (one body per source, so no set is built).
default foreign_read := false

foreign_read if {
	lib.is_movement
	foreign(input.data.tenant)
}

foreign_read if foreign(source_store.tenant)

foreign_read if {
	lib.is_action
	foreign(input.target.tenant)
}

foreign_read if foreign(target_store.tenant)

# METADATA
# title: Cross-tenant write
# description: The subject writes into a store that belongs to another tenant.
# custom:
#   rule: L2.cross_tenant_write
#   layer: l2_data_operations
#   threats: [T1, T28]
#   mitigations: [permission_aware_retrieval]
deny contains reason("L2.cross_tenant_write", ["T1", "T28"], msg) if {
	is_write
	t := dest_store.tenant
	foreign(t)
	msg := sprintf("%s (tenant %s) writes into store %s of tenant %s", [input.subject.id, agent_tenant, input.destination.id, t])
}

data_rank := rank(input.data.classification) if lib.is_movement

# The subject's clearance ("none" when its entry names none) and its rank; undefined for an
# unregistered subject.
agent_clearance := c if {
	c := lib.agent.clearance
} else := "none" if lib.registered

agent_clearance_rank := clearance_rank(agent_clearance)

# The clearance of whoever receives the data: an agent, a tool, or an external destination
# (an external destination the registry does not list is cleared for nothing).
receiver_clearance := lib.agents[input.destination.id].clearance if {
	lib.is_movement
	input.destination.type == "agent"
}

receiver_clearance := c if {
	lib.is_movement
	input.destination.type == "tool"
	c := tool_clearance
}

receiver_clearance := c if {
	lib.is_movement
	input.destination.type == "external"
	c := destination_clearance
}

tool_clearance := c if {
	c := lib.tools[input.destination.id].clearance
} else := "internal"

destination_clearance := c if {
	c := lib.destinations[input.destination.id].clearance
} else := "none"

# METADATA
# title: Classification above the receiver's clearance
# description: >-
#   Data, or an action's target, is classified above the clearance of the agent handling it or
#   of the agent, tool or external destination receiving it.
# custom:
#   rule: L2.classification_exceeds_clearance
#   layer: l2_data_operations
#   threats: [T28, T3]
#   mitigations: [data_classification, permission_aware_retrieval]
deny contains reason("L2.classification_exceeds_clearance", ["T28", "T3"], msg) if {
	lib.is_movement
	data_rank > agent_clearance_rank
	msg := sprintf("%s is cleared for %s but moves %s data", [input.subject.id, agent_clearance, input.data.classification])
}

deny contains reason("L2.classification_exceeds_clearance", ["T28", "T3"], msg) if {
	lib.is_movement
	data_rank > clearance_rank(receiver_clearance)
	msg := sprintf("%s data may not reach %s %s, which is cleared for %s", [input.data.classification, input.destination.type, input.destination.id, receiver_clearance])
}

deny contains reason("L2.classification_exceeds_clearance", ["T28", "T3"], msg) if {
	target_above_clearance
	msg := sprintf("%s is cleared for %s but %s targets %s %s classified %v", [input.subject.id, agent_clearance, input.action, input.target.type, input.target.id, sort([c | some c in lib.target_classifications])])
}

# lib.max_target_rank above the agent's clearance, tested as "some target classification ranks
# above it" (the same condition, without a max over a comprehension of object.get calls), one
# body per classification in lib.target_classifications.
default target_above_clearance := false

target_above_clearance if {
	lib.is_action
	rank(input.target.classification) > agent_clearance_rank
}

target_above_clearance if rank(target_store.classification) > agent_clearance_rank

# METADATA
# title: Declassification needs approval
# description: >-
#   Data is written into a store classified below the data's own level: data never moves down
#   a classification level without an explicit human decision.
# custom:
#   rule: L2.declassification_requires_approval
#   layer: l2_data_operations
#   threats: [T28]
#   mitigations: [classification_boundary_enforcement, data_classification]
hitl contains reason("L2.declassification_requires_approval", ["T28"], msg) if {
	is_write
	level := dest_store.classification
	data_rank > rank(level)
	msg := sprintf("%s moves %s data into store %s classified %s: declassification needs approval", [input.subject.id, input.data.classification, input.destination.id, level])
}

# METADATA
# title: Redact personal data leaving the organisation's stores
# custom:
#   rule: L2.redact_pii
#   layer: l2_data_operations
#   threats: [T28]
#   mitigations: [output_egress_dlp]
obligations contains object.union(reason("L2.redact_pii", ["T28"], msg), {"type": "redact", "params": {"labels": ["pii"]}}) if {
	lib.is_movement
	input.data.contains_pii == true
	input.destination.type in {"external", "tool", "agent"}
	msg := sprintf("redact personal data before it reaches %s %s", [input.destination.type, input.destination.id])
}
