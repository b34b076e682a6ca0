# L1 Foundation Models: which model weights an agent may run on, pinned by digest, and what
# may flow into data that later trains or fine-tunes a model.
#
# Cost on rego-cpp: registry entries are bound (`_ =`) or read by a field, never tested as bare
# objects (rego-cpp compares those with false by serialising them) or copied with object.get,
# and `a != b` is written `not a == b` on bound values (`!=` is a built-in call there).
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
	_ = lib.agent
	not approved_model_ids[model.id]
	msg := sprintf("agent %s runs on model %s, which is not approved for it (approved: %v)", [input.subject.id, model.id, object.keys(approved_models)])
}

# The agent's approved models, for the message, and their ids, looked up instead of testing a
# model entry as a bare object. (rego-cpp hoists a negation without variables to the front of
# a body, so the test names `model` to stay behind the cheap guards.)
approved_models := object.get(lib.agent, "models", {})

approved_model_ids contains id if {
	some id, _ in lib.agent.models
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
	presented := presented_digest
	not presented == pinned
	msg := sprintf("agent %s presents %s for model %s, but the registry pins %s", [input.subject.id, presented, model.id, pinned])
}

# object.get(input.model, "digest", "no digest"), without copying the model.
default presented_digest := "no digest"

presented_digest := input.model.digest

# A store feeds model training unless its registry entry says `feeds_training: false`: an entry
# that says nothing is judged as the riskier case, so leaving the field out never loosens.
default store_not_training := false

store_not_training if lib.stores[input.destination.id].feeds_training == false

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
	input.destination.type == "store"
	not store_not_training
	operation := input.operation
	not operation == "read"
	count(lib.untrusted_origins) > 0
	msg := sprintf("%s writes data with untrusted provenance %v into store %s, which feeds model training", [input.subject.id, sort([p | some p in lib.untrusted_origins]), input.destination.id])
}

hitl := set()

obligations := set()
