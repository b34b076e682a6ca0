# Cross-layer pivots (T14): a person who reaches one agent, typically one facing people (a
# helpdesk chat, an open-ended assistant), pushes effects through the agents it delegates to.
# What a chain does unattended is bounded by every delegator on it: an action at the end of the
# chain runs without a human only when its risk class is one each delegator may itself run
# unattended (its `unattended_risks`, else its autonomy class's). Adding a hop adds a bound.
package maestro.layers.cross_layer

import rego.v1

import data.maestro.lib

# As L6: what an autonomy class may run unattended when the registry's section does not say.
chain_default_unattended := {"directed": ["read", "write"], "open_ended": ["read"]}

# The risk classes each delegator of the chain may run unattended; a delegator without an
# autonomy (or an unregistered one) may run nothing unattended.
delegator_unattended[id] := risks if {
	some hop in lib.chain
	id := hop.delegator
	risks := lib.agents[id].unattended_risks
}

delegator_unattended[id] := risks if {
	some hop in lib.chain
	id := hop.delegator
	not lib.agents[id].unattended_risks
	autonomy := lib.agents[id].autonomy
	risks := lib.autonomy_classes[autonomy].unattended_risks
}

delegator_unattended[id] := risks if {
	some hop in lib.chain
	id := hop.delegator
	not lib.agents[id].unattended_risks
	autonomy := lib.agents[id].autonomy
	not lib.autonomy_classes[autonomy].unattended_risks
	risks := chain_default_unattended[autonomy]
}

# The risk of what the request does: the tool's risk class, or a movement's read or write.
effect_risk := lib.tool_risk if lib.is_action

else := "read" if {
	lib.is_movement
	input.operation == "read"
} else := "write" if lib.is_movement

chain_delegators := {hop.delegator | some hop in lib.chain}

delegators_allowing contains id if {
	risk := effect_risk
	some id, risks in delegator_unattended
	some r in risks
	r == risk
}

# The layer's escalations: a complete rule, so that a request without a chain (most of them)
# pays one memoised test rather than a partial set's machinery.
default hitl := set()

hitl := chain_escalations if lib.chained

# METADATA
# title: Chain pushes an effect beyond a delegator's autonomy
# description: >-
#   An action or data movement at the end of a delegation chain has a risk class that some
#   delegator on the chain (its root, the agent a person reached, above all) may not run
#   unattended itself; a human decides. Irreversible actions are left to dual control.
# custom:
#   rule: CL.chain_autonomy_exceeded
#   layer: cross_layer
#   threats: [T14]
#   mitigations: [policy_bound_autonomy, hitl_escalation]
chain_escalations contains reason("CL.chain_autonomy_exceeded", ["T14"], msg) if {
	not lib.irreversible
	risk := effect_risk
	bounded := chain_delegators - delegators_allowing
	some _ in bounded
	msg := sprintf("agent %s does a %s request through a chain from %s, and delegator(s) %v may not run %s unattended", [input.subject.id, risk, lib.chain[0].delegator, sort([a | some a in bounded]), risk])
}
