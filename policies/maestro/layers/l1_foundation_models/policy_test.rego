package maestro.layers.l1_foundation_models_test

import rego.v1

import data.maestro.layers.l1_foundation_models as l1
import data.maestro.testing as t

pinned := data.maestro.registry.agents[t.analyst_security].models["llama-3.1-70b-instruct"].digest

test_model_not_approved_denies if {
	t.fires(l1.deny, "L1.model_not_approved") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "llama-3.1-70b-instruct-q4-community", "digest": "sha256:00"}
}

test_model_not_approved_allows_approved_model if {
	not t.fires(l1.deny, "L1.model_not_approved") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "llama-3.1-70b-instruct", "digest": pinned}
}

test_model_digest_mismatch_denies_other_digest if {
	t.fires(l1.deny, "L1.model_digest_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "llama-3.1-70b-instruct", "digest": "sha256:tampered"}
}

test_model_digest_mismatch_denies_missing_digest if {
	t.fires(l1.deny, "L1.model_digest_mismatch") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "llama-3.1-70b-instruct"}
}

test_model_digest_mismatch_allows_pinned_digest if {
	d := l1.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "llama-3.1-70b-instruct", "digest": pinned}
	not t.fires(d, "L1.model_digest_mismatch")
	count(d) == 0
}

test_training_data_untrusted_provenance_denies if {
	t.fires(l1.deny, "L1.training_data_untrusted_provenance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal", "provenance": ["external:ticket-portal"]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "support-finetune-corpus"}
}

test_training_data_untrusted_provenance_allows_trusted_origins if {
	not t.fires(l1.deny, "L1.training_data_untrusted_provenance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal", "provenance": ["kb-vectors", t.analyst_security]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "support-finetune-corpus"}
}

test_model_digest_mismatch_reports_missing_digest if {
	reasons := l1.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "llama-3.1-70b-instruct"}
	some r in reasons
	r.rule == "L1.model_digest_mismatch"
	r.message == sprintf("agent %s presents no digest for model llama-3.1-70b-instruct, but the registry pins %s", [t.analyst_security, pinned])
}

test_model_not_approved_lists_approved_models if {
	reasons := l1.deny with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_security}
		with input.action as "kb_search"
		with input.model as {"id": "other-model", "digest": "sha256:00"}
	some r in reasons
	r.rule == "L1.model_not_approved"
	r.message == sprintf("agent %s runs on model other-model, which is not approved for it (approved: {\"llama-3.1-70b-instruct\"})", [t.analyst_security])
}

# A store whose entry says nothing about training is judged as feeding it (registry monotonicity).
test_training_data_untrusted_provenance_denies_a_store_silent_on_training if {
	t.fires(l1.deny, "L1.training_data_untrusted_provenance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal", "provenance": ["external:ticket-portal"]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "notes"}
		with data.maestro.registry.stores as {"notes": {"classification": "internal", "tenant": "corp"}}
}

test_training_data_untrusted_provenance_allows_a_store_that_does_not_feed_training if {
	not t.fires(l1.deny, "L1.training_data_untrusted_provenance") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "internal", "provenance": ["external:ticket-portal"]}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "notes"}
		with data.maestro.registry.stores as {"notes": {"classification": "internal", "tenant": "corp", "feeds_training": false}}
}
