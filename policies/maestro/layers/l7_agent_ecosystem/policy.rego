# L7 Agent Ecosystem: who is a legitimate participant (registered, authenticated, trusted),
# whether an MCP tool is the one that was approved, and human control of the routing graph.
package maestro.layers.l7_agent_ecosystem

import rego.v1

import data.maestro.lib

layer := "l7_agent_ecosystem"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# Every agent the request names: subject, delegatee, receiving agent and every hop of the chain.
participants contains input.subject.id

participants contains input.delegatee if lib.is_delegation

participants contains input.destination.id if input.destination.type == "agent"

participants contains id if {
	some hop in lib.chain
	some id in [hop.delegator, hop.delegatee]
}

# METADATA
# title: Unregistered agent
# description: The subject, or an agent the request hands work or data to, is not in the registry.
# custom:
#   rule: L7.unregistered_agent
#   layer: l7_agent_ecosystem
#   threats: [T9, T13]
#   mitigations: [workload_identity]
deny contains reason("L7.unregistered_agent", ["T9", "T13"], msg) if {
	some id in participants
	not lib.agents[id]
	msg := sprintf("agent %s is not registered", [id])
}

deny contains reason("L7.unregistered_agent", ["T9", "T13"], "the request names no subject id") if not input.subject.id

# METADATA
# title: Subject is not the authenticated caller
# description: The gate authenticated the caller as other workloads than the subject the request claims.
# custom:
#   rule: L7.impersonated_agent
#   layer: l7_agent_ecosystem
#   threats: [T9, T40]
#   mitigations: [workload_identity, message_signing]
deny contains reason("L7.impersonated_agent", ["T9", "T40"], msg) if {
	authenticated := input.state.caller.authenticated_subjects
	not input.subject.id in authenticated
	msg := sprintf("the request claims to come from %s but the caller authenticated as %v", [input.subject.id, authenticated])
}

# METADATA
# title: Agent trust score below the minimum
# description: A registered agent the request involves has a trust score below the registry's minimum.
# custom:
#   rule: L7.trust_below_threshold
#   layer: l7_agent_ecosystem
#   threats: [T13, T16]
#   mitigations: [trust_scoring]
deny contains reason("L7.trust_below_threshold", ["T13", "T16"], msg) if {
	some id in participants
	entry := lib.agents[id]
	score := object.get(entry, "trust_score", 0)
	score < lib.trust_min
	msg := sprintf("agent %s has trust score %v, below the minimum %v", [id, score, lib.trust_min])
}

# METADATA
# title: MCP tool description does not match its approved digest
# description: >-
#   A tool with an approved description digest is called with a different (or no) description
#   digest, or from a server other than the registered one: the tool may have been swapped.
# custom:
#   rule: L7.tool_description_mismatch
#   layer: l7_agent_ecosystem
#   threats: [T16, T47, T17]
#   mitigations: [tool_description_validation]
deny contains reason("L7.tool_description_mismatch", ["T16", "T47", "T17"], msg) if {
	approved := lib.tool.description_digest
	presented := object.get(input, ["tool", "digest"], "no digest")
	presented != approved
	msg := sprintf("tool %s is described by %s, not by its approved description digest %s", [input.action, presented, approved])
}

deny contains reason("L7.tool_description_mismatch", ["T16", "T47", "T17"], msg) if {
	server := lib.tool.server
	presented := input.tool.server
	presented != server
	msg := sprintf("tool %s is served by %s, not by its registered server %s", [input.action, presented, server])
}

# METADATA
# title: Routing graph change needs a human
# description: A change to the agent routing graph (who talks to whom) waits for human approval.
# custom:
#   rule: L7.routing_change_requires_approval
#   layer: l7_agent_ecosystem
#   threats: [T12, T13, T25]
#   mitigations: [routing_graph_integrity, hitl_escalation]
hitl contains reason("L7.routing_change_requires_approval", ["T12", "T13", "T25"], msg) if {
	lib.tool.modifies_routing == true
	msg := sprintf("agent %s changes the routing graph with %s", [input.subject.id, input.action])
}

hitl contains reason("L7.routing_change_requires_approval", ["T12", "T13", "T25"], msg) if {
	lib.is_movement
	input.operation != "read"
	input.destination.type == "store"
	lib.stores[input.destination.id].routing_graph == true
	msg := sprintf("agent %s writes into the routing graph store %s", [input.subject.id, input.destination.id])
}

obligations := set()
