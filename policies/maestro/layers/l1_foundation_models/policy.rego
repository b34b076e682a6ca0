# L1 Foundation Models: which model weights an agent may run on, pinned by digest, and what
# may flow into data that later trains or fine-tunes a model.
package maestro.layers.l1_foundation_models

import rego.v1

import data.maestro.lib

layer := "l1_foundation_models"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# METADATA
# title: Model not approved for the agent
# description: The agent names a model that is not among its registry's approved models.
# custom:
#   rule: L1.model_not_approved
#   layer: l1_foundation_models
#   threats: [T17, T7]
#   mitigations: [model_registry]
deny contains reason("L1.model_not_approved", ["T17", "T7"], msg) if {
	lib.is_action
	model := input.model
	approved := object.get(lib.agent, "models", {})
	not approved[model.id]
	msg := sprintf("agent %s runs on model %s, which is not approved for it (approved: %v)", [input.subject.id, model.id, object.keys(approved)])
}

# METADATA
# title: Model digest does not match the pinned digest
# description: An approved model is used with a digest other than the pinned one, or with none.
# custom:
#   rule: L1.model_digest_mismatch
#   layer: l1_foundation_models
#   threats: [T17, T26]
#   mitigations: [model_registry, signed_aibom]
deny contains reason("L1.model_digest_mismatch", ["T17", "T26"], msg) if {
	lib.is_action
	model := input.model
	pinned := lib.agent.models[model.id].digest
	presented := object.get(model, "digest", "no digest")
	presented != pinned
	msg := sprintf("agent %s presents %s for model %s, but the registry pins %s", [input.subject.id, presented, model.id, pinned])
}

# METADATA
# title: Untrusted data written to a store that feeds model training
# description: >-
#   Data whose provenance includes an untrusted origin is written into a store that is used to
#   fine-tune or update a model: the poison would reach every agent sharing that model.
# custom:
#   rule: L1.training_data_untrusted_provenance
#   layer: l1_foundation_models
#   threats: [T1, T17]
#   mitigations: [memory_content_validation, model_registry]
deny contains reason("L1.training_data_untrusted_provenance", ["T1", "T17"], msg) if {
	lib.is_movement
	input.operation != "read"
	input.destination.type == "store"
	lib.stores[input.destination.id].feeds_training == true
	count(lib.untrusted_origins) > 0
	msg := sprintf("%s writes data with untrusted provenance %v into store %s, which feeds model training", [input.subject.id, sort([p | some p in lib.untrusted_origins]), input.destination.id])
}

hitl := set()

obligations := set()
