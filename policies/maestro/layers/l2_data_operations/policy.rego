# L2 Data Operations: what may enter shared memory and vector stores, tenant isolation on
# retrieval, and classification-aware movement of data between agents, stores and tools.
package maestro.layers.l2_data_operations

import rego.v1

import data.maestro.lib

layer := "l2_data_operations"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

writes := {"write", "copy", "export", "memory_write"}

dest_store := lib.stores[input.destination.id] if {
	lib.is_movement
	input.destination.type == "store"
}

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
	count(lib.untrusted_origins) > 0
	msg := sprintf("%s writes into memory %s data that passed through untrusted origins %v", [input.subject.id, input.destination.id, sort([p | some p in lib.untrusted_origins])])
}

memory_write if {
	lib.is_movement
	input.operation == "memory_write"
}

memory_write if {
	input.operation in writes
	dest_store.trusted_for_memory == true
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
	input.operation in writes
	allowed := dest_store.writers
	not input.subject.id in allowed
	msg := sprintf("%s may not write to store %s (writers: %v)", [input.subject.id, input.destination.id, allowed])
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
	lib.is_movement
	some end in [input.source, input.destination]
	end.type == "store"
	not lib.stores[end.id]
	msg := sprintf("store %s is not in the registry; its classification and tenant are unknown", [end.id])
}

agent_tenant := object.get(lib.entry, "tenant", lib.default_tenant)

foreign(t) if {
	t != agent_tenant
	t != "*"
}

read_tenants contains t if {
	lib.is_movement
	t := input.data.tenant
}

read_tenants contains t if {
	lib.is_movement
	input.source.type == "store"
	t := lib.stores[input.source.id].tenant
}

read_tenants contains t if {
	lib.is_action
	t := input.target.tenant
}

read_tenants contains t if {
	lib.is_action
	input.target.type == "store"
	t := lib.stores[input.target.id].tenant
}

# METADATA
# title: Cross-tenant retrieval
# description: The subject reads data or a store that belongs to another tenant.
# custom:
#   rule: L2.cross_tenant_retrieval
#   layer: l2_data_operations
#   threats: [T28, T3]
#   mitigations: [permission_aware_retrieval]
deny contains reason("L2.cross_tenant_retrieval", ["T28", "T3"], msg) if {
	lib.agent
	some t in read_tenants
	foreign(t)
	msg := sprintf("%s (tenant %s) reaches data of tenant %s", [input.subject.id, agent_tenant, t])
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
	lib.agent
	input.operation in writes
	t := dest_store.tenant
	foreign(t)
	msg := sprintf("%s (tenant %s) writes into store %s of tenant %s", [input.subject.id, agent_tenant, input.destination.id, t])
}

data_rank := lib.rank(input.data.classification) if lib.is_movement

# The clearance of whoever receives the data: an agent, a tool, or an external destination
# (an external destination the registry does not list is cleared for nothing).
receiver_clearance := lib.agents[input.destination.id].clearance if input.destination.type == "agent"

receiver_clearance := object.get(lib.tools, [input.destination.id, "clearance"], "internal") if input.destination.type == "tool"

receiver_clearance := object.get(lib.destinations, [input.destination.id, "clearance"], "none") if input.destination.type == "external"

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
	clearance := object.get(lib.agent, "clearance", "none")
	data_rank > lib.clearance_rank(clearance)
	msg := sprintf("%s is cleared for %s but moves %s data", [input.subject.id, clearance, input.data.classification])
}

deny contains reason("L2.classification_exceeds_clearance", ["T28", "T3"], msg) if {
	data_rank > lib.clearance_rank(receiver_clearance)
	msg := sprintf("%s data may not reach %s %s, which is cleared for %s", [input.data.classification, input.destination.type, input.destination.id, receiver_clearance])
}

deny contains reason("L2.classification_exceeds_clearance", ["T28", "T3"], msg) if {
	clearance := object.get(lib.agent, "clearance", "none")
	lib.max_target_rank > lib.clearance_rank(clearance)
	msg := sprintf("%s is cleared for %s but %s targets %s %s classified %v", [input.subject.id, clearance, input.action, input.target.type, input.target.id, sort([c | some c in lib.target_classifications])])
}

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
	input.operation in writes
	level := dest_store.classification
	data_rank > lib.rank(level)
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
