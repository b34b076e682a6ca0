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

# An action's target, and a movement's source, that the registry knows as a store count as that
# store whatever type the caller gives them.
target_store := lib.stores[input.target.id] if lib.is_action

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
	dest_store_known
	not listed_writer
	msg := sprintf("%s may not write to store %s (writers: %v)", [input.subject.id, input.destination.id, store_writers])
}

# The destination store's writers; a store that lists none has no writer, and `"*"` admits anyone.
store_writers := w if {
	w := dest_store.writers
} else := []

# The subject is among the destination store's writers (a scan rather than `in`).
default listed_writer := false

listed_writer if {
	some w in dest_store.writers
	w == input.subject.id
}

listed_writer if {
	some w in dest_store.writers
	w == "*"
}

# --- retrieval pins ---------------------------------------------------------------------

# A declared retrieval (`input.retrieval`) queried the store a data movement reads from (its
# source) or an action targets. That store pins the embedding model and index version its
# index was built with (`embedding_model`, `index_version`); retrieval that feeds a decision
# must use both. A store without a pin, or one the registry lacks, pins nothing: every
# declared retrieval from it is refused.
retrieval_store := input.source.id if lib.is_movement

else := input.target.id if lib.is_action

# Why the declared retrieval drifted from its store's pins, when it did (the first that holds).
retrieval_drift := msg if {
	not lib.stores[retrieval_store].embedding_model
	msg := sprintf("retrieval from %s cannot feed a decision: the registry pins no embedding model for it", [retrieval_store])
} else := msg if {
	pinned := lib.stores[retrieval_store].embedding_model
	not input.retrieval.embedding_model == pinned
	msg := sprintf("retrieval from %s used embedding model %s; the store pins %s", [retrieval_store, input.retrieval.embedding_model, pinned])
} else := msg if {
	not lib.stores[retrieval_store].index_version
	msg := sprintf("retrieval from %s cannot feed a decision: the registry pins no index version for it", [retrieval_store])
} else := msg if {
	pinned := lib.stores[retrieval_store].index_version
	declared := retrieval_index_version
	not declared == pinned
	msg := sprintf("retrieval from %s queried index version %s; the store pins %s (a stale or other index)", [retrieval_store, declared, pinned])
}

default retrieval_index_version := "(none declared)"

retrieval_index_version := input.retrieval.index_version

# METADATA
# title: Retrieval from an index other than its store's pinned one
# description: >-
#   A retrieval declares an embedding model or index version other than the ones the store it
#   queried pins, or queries a store that pins none: results embedded with another model, or
#   from a stale index, would feed the decision outdated or mismatched guidance.
# custom:
#   rule: L2.retrieval_embedding_drift
#   layer: l2_data_operations
#   threats: [T49]
#   mitigations: [model_registry, memory_content_validation]
deny contains reason("L2.retrieval_embedding_drift", ["T49"], msg) if {
	_ := input.retrieval.embedding_model
	_ := retrieval_store
	msg := retrieval_drift
}

deny contains reason("L2.retrieval_embedding_drift", ["T49"], msg) if {
	_ := input.retrieval.embedding_model
	not retrieval_store
	msg := sprintf("agent %s declares a retrieval without naming the store it queried (no target)", [input.subject.id])
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

# The subject's tenant. An agent whose entry names none belongs to no tenant: every tenant but
# the shared `*` is foreign to it. A store that names none is foreign to everyone: it reads as
# `no_tenant`, which no agent's tenant equals.
agent_tenant := t if {
	t := lib.agent.tenant
} else := "(agent without a tenant)"

no_tenant := "(store without a tenant)"

store_tenant(store) := t if {
	t := store.tenant
} else := no_tenant

# t is the tenant of someone other than the subject, which must be registered.
foreign(t) if {
	not t == agent_tenant
	not t == "*"
	lib.registered
}

# The tenants a request reads: the caller's labels (which can only add a tenant), the tenant of
# every origin the registry knows as a store (source and provenance), and the target store's.
read_tenants contains t if {
	lib.is_movement
	t := input.data.tenant
}

read_tenants contains store_tenant(lib.stores[p]) if some p in lib.origins

read_tenants contains t if {
	lib.is_action
	t := input.target.tenant
}

read_tenants contains store_tenant(target_store)

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

# Some tenant in read_tenants is foreign.
default foreign_read := false

foreign_read if {
	some t in read_tenants
	foreign(t)
}

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
	t := store_tenant(dest_store)
	foreign(t)
	msg := sprintf("%s (tenant %s) writes into store %s of tenant %s", [input.subject.id, agent_tenant, input.destination.id, t])
}

# The data's effective rank and label: the highest of the caller's label and the registry's
# classifications of its source and provenance (lib.data_rank).
data_rank := lib.data_rank

data_label := lib.data_label

# The subject's clearance ("none" when its entry names none) and its rank; undefined for an
# unregistered subject.
agent_clearance := c if {
	c := lib.agent.clearance
} else := "none" if lib.registered

agent_clearance_rank := clearance_rank(agent_clearance)

# The clearances of whoever receives the data, by its id as the registry knows it, whatever type
# the caller gives it: a registered agent's, a tool's, an external destination's; and, by the
# declared type, the defaults for one the registry does not list (a tool or external destination
# it does not know, or an entry without a clearance, is cleared for nothing). The lowest counts.
receiver_clearances contains c if {
	lib.is_movement
	c := entry_clearance(lib.agents[input.destination.id])
}

receiver_clearances contains c if {
	lib.is_movement
	c := entry_clearance(lib.tools[input.destination.id])
}

receiver_clearances contains c if {
	lib.is_movement
	c := entry_clearance(lib.destinations[input.destination.id])
}

receiver_clearances contains "none" if {
	lib.is_movement
	input.destination.type == "tool"
	not known_tool_receiver
}

receiver_clearances contains "none" if {
	lib.is_movement
	input.destination.type == "external"
	not known_external_receiver
}

default known_tool_receiver := false

known_tool_receiver if _ := lib.tools[input.destination.id]

default known_external_receiver := false

known_external_receiver if _ := lib.destinations[input.destination.id]

entry_clearance(e) := c if {
	c := e.clearance
} else := "none"

# The receiving clearances the data ranks above.
exceeded_clearances contains c if {
	some c in receiver_clearances
	data_rank > clearance_rank(c)
}

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
	msg := sprintf("%s is cleared for %s but moves %s data", [input.subject.id, agent_clearance, data_label])
}

deny contains reason("L2.classification_exceeds_clearance", ["T28", "T3"], msg) if {
	lib.is_movement
	some c in exceeded_clearances
	msg := sprintf("%s data may not reach %s %s, which is cleared for %s", [data_label, input.destination.type, input.destination.id, c])
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

target_above_clearance if rank(lib.target_store_classification) > agent_clearance_rank

# The destination store's classification; one without a classification ranks below every level,
# so any data written into it is a declassification.
dest_level := c if {
	c := dest_store.classification
} else := "unclassified" if dest_store_known

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
	level := dest_level
	data_rank > clearance_rank(level)
	msg := sprintf("%s moves %s data into store %s classified %s: declassification needs approval", [input.subject.id, data_label, input.destination.id, level])
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
