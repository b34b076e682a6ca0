# Retrieval pins (T49): a declared retrieval uses the embedding model and index version its
# store pins; each with the nearest case that passes.
package maestro.layers.l2_data_operations.retrieval_test

import rego.v1

import data.maestro.layers.l2_data_operations as l2
import data.maestro.testing as t

test_retrieval_embedding_drift_allows_the_pinned_model_and_index if {
	not t.fires(l2.deny, "L2.retrieval_embedding_drift") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "policy-vectors"}
		with input.retrieval as {"embedding_model": "text-embedding-3-large", "index_version": "2026-11-28"}
}

test_retrieval_embedding_drift_denies_another_embedding_model if {
	some r in l2.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "policy-vectors"}
		with input.retrieval as {"embedding_model": "text-embedding-ada-002", "index_version": "2026-11-28"}
	r.rule == "L2.retrieval_embedding_drift"
	contains(r.message, "text-embedding-ada-002")
}

test_retrieval_embedding_drift_denies_a_stale_index if {
	some r in l2.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "policy-vectors"}
		with input.retrieval as {"embedding_model": "text-embedding-3-large", "index_version": "2025-09-30"}
	r.rule == "L2.retrieval_embedding_drift"
	contains(r.message, "2025-09-30")
}

test_retrieval_embedding_drift_denies_an_undeclared_index_version if {
	t.fires(l2.deny, "L2.retrieval_embedding_drift") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "policy-vectors"}
		with input.retrieval as {"embedding_model": "text-embedding-3-large"}
}

test_retrieval_embedding_drift_denies_a_store_without_pins if {
	t.fires(l2.deny, "L2.retrieval_embedding_drift") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.target as {"type": "store", "id": "kb-vectors"}
		with input.retrieval as {"embedding_model": "text-embedding-3-large", "index_version": "2026-11-28"}
}

test_retrieval_embedding_drift_denies_a_retrieval_without_a_target if {
	t.fires(l2.deny, "L2.retrieval_embedding_drift") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.retrieval as {"embedding_model": "text-embedding-3-large", "index_version": "2026-11-28"}
}

test_retrieval_embedding_drift_judges_a_movements_source if {
	t.fires(l2.deny, "L2.retrieval_embedding_drift") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_finance}
		with input.source as {"type": "store", "id": "policy-vectors"}
		with input.destination as {"type": "agent", "id": t.analyst_finance}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.retrieval as {"embedding_model": "text-embedding-3-large", "index_version": "2026-10-01"}
}

test_retrieval_embedding_drift_allows_a_movement_from_the_pinned_index if {
	not t.fires(l2.deny, "L2.retrieval_embedding_drift") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_finance}
		with input.source as {"type": "store", "id": "policy-vectors"}
		with input.destination as {"type": "agent", "id": t.analyst_finance}
		with input.operation as "read"
		with input.data as {"classification": "internal"}
		with input.retrieval as {"embedding_model": "text-embedding-3-large", "index_version": "2026-11-28"}
}
