# What the gate knows wins (issue 21, item 1) and missing registry data fails closed (item 5):
# the data's classification is the highest of the caller's label and the registry's
# classification of its source and provenance stores; a receiver's clearance, and every tenant,
# are the registry's whatever type or label the caller gives. Each case sits beside the benign
# neighbour that must stay allowed.
package maestro.layers.l2_data_operations_registry_test

import rego.v1

import data.maestro.layers.l2_data_operations as l2
import data.maestro.testing as t

test_label_below_the_source_store_does_not_declassify if {
	# The issue's reproduction: restricted incident-db data labelled internal, read by reporter.
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "incident-db"}
		with input.destination as {"type": "agent", "id": t.reporter}
}

test_label_matching_an_internal_source_store_is_allowed if {
	d := l2.deny with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.reporter}
	count(d) == 0
}

test_message_names_the_registry_classification if {
	d := l2.deny with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "incident-db"}
		with input.destination as {"type": "agent", "id": t.reporter}
	some r in d
	r.message == "spiffe://corp.example/agent/reporter is cleared for internal but moves restricted data"
}

test_source_store_counts_whatever_type_the_caller_gives if {
	# incident-db named as an "agent" source is still the restricted store.
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "read"
		with input.data as {"classification": "public"}
		with input.source as {"type": "agent", "id": "incident-db"}
		with input.destination as {"type": "agent", "id": t.reporter}
}

test_provenance_store_raises_the_classification if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "copy"
		with input.data as {"classification": "internal", "provenance": ["hr-db", t.analyst_security]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "agent", "id": t.reporter}
}

test_provenance_of_internal_stores_is_allowed if {
	not t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "copy"
		with input.data as {"classification": "internal", "provenance": ["reports", t.analyst_security]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "agent", "id": t.reporter}
}

test_a_higher_caller_label_still_counts if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "read"
		with input.data as {"classification": "confidential"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.reporter}
}

test_declassification_uses_the_source_store_classification if {
	# Internal-labelled data from a confidential store into the internal reports store.
	t.fires(l2.hitl, "L2.declassification_requires_approval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "copy"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "analysis-outputs"}
		with input.destination as {"type": "store", "id": "reports"}
}

test_receiver_agent_clearance_applies_whatever_type_the_caller_gives if {
	# The partner agent named as a "tool" keeps its public clearance (a tool would be internal).
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "copy"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "tool", "id": t.partner}
}

test_registered_tool_receiver_with_its_clearance_is_allowed if {
	not t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "copy"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "tool", "id": "kb_search"}
}

test_unknown_tool_receiver_is_cleared_for_nothing if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "copy"
		with input.data as {"classification": "public"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "tool", "id": "attacker.example"}
}

test_tool_without_clearance_is_cleared_for_nothing if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "copy"
		with input.data as {"classification": "public"}
		with input.source as {"type": "agent", "id": t.reporter}
		with input.destination as {"type": "tool", "id": "kb_search"}
		with data.maestro.registry.tools as {"kb_search": {"risk_class": "read"}}
}

test_store_without_tenant_is_foreign_to_everyone if {
	t.fires(l2.deny, "L2.cross_tenant_retrieval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "loose"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with data.maestro.registry.stores as {"loose": {"classification": "internal"}}
}

test_store_with_the_agents_tenant_is_read if {
	not t.fires(l2.deny, "L2.cross_tenant_retrieval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "loose"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with data.maestro.registry.stores as {"loose": {"classification": "internal", "tenant": "corp"}}
}

test_provenance_store_of_another_tenant_is_cross_tenant if {
	# acme-matters in the provenance, with a corp-labelled source: the registry's tenant counts.
	t.fires(l2.deny, "L2.cross_tenant_retrieval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "confidential", "tenant": "corp", "provenance": ["acme-matters"]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "agent", "id": t.analyst_security}
}

test_store_without_tenant_may_not_be_written if {
	t.fires(l2.deny, "L2.cross_tenant_write") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "loose"}
		with data.maestro.registry.stores as {"loose": {"classification": "internal", "writers": ["*"]}}
}

test_agent_without_tenant_belongs_to_no_tenant if {
	t.fires(l2.deny, "L2.cross_tenant_retrieval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with data.maestro.registry.agents as {"spiffe://corp.example/agent/analyst-security": {"clearance": "restricted"}}
}

test_shared_store_is_read_by_an_agent_without_tenant if {
	not t.fires(l2.deny, "L2.cross_tenant_retrieval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "shared"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with data.maestro.registry.agents as {"spiffe://corp.example/agent/analyst-security": {"clearance": "restricted"}}
		with data.maestro.registry.stores as {"shared": {"classification": "internal", "tenant": "*"}}
}

test_store_without_writers_has_no_writer if {
	t.fires(l2.deny, "L2.store_writer_not_allowed") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "loose"}
		with data.maestro.registry.stores as {"loose": {"classification": "internal", "tenant": "corp"}}
}

test_store_open_to_every_writer_is_written if {
	not t.fires(l2.deny, "L2.store_writer_not_allowed") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "external-uploads"}
}

test_source_store_without_classification_ranks_above_restricted if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "read"
		with input.data as {"classification": "public"}
		with input.source as {"type": "store", "id": "loose"}
		with input.destination as {"type": "agent", "id": t.analyst_security}
		with data.maestro.registry.stores as {"loose": {"tenant": "corp"}}
}

test_destination_store_without_classification_is_a_declassification if {
	t.fires(l2.hitl, "L2.declassification_requires_approval") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "public"}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "loose"}
		with data.maestro.registry.stores as {"loose": {"tenant": "corp", "writers": ["*"]}}
}

test_action_target_store_counts_whatever_type_the_caller_gives if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.arguments as {"table": "report_summaries"}
		with input.target as {"type": "table", "id": "incident-db", "classification": "internal"}
}

test_action_target_store_without_classification_is_unclassified if {
	t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "loose"}
		with data.maestro.registry.stores as {"loose": {"tenant": "corp"}}
}

test_action_target_store_at_the_agents_clearance_is_allowed if {
	not t.fires(l2.deny, "L2.classification_exceeds_clearance") with input.kind as "agent_action"
		with input.subject as {"id": t.reporter}
		with input.action as "sql_query"
		with input.arguments as {"table": "report_summaries"}
		with input.target as {"type": "store", "id": "reports"}
}
