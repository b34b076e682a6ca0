# L7 Agent Ecosystem: who is a legitimate participant (registered, authenticated, trusted),
# whether an MCP tool is the one that was approved, and human control of the routing graph.
#
# Cost on rego-cpp: the subject, delegatee, receiving agent and chain hops are checked each by
# their own rule bodies, guarded by a cheap input test, rather than through a participants set
# (a set build per rule on every request). Registry entries are bound (`_ =`) or read by a
# field, never tested as bare objects (rego-cpp compares those with false by serialising them)
# or copied with object.get. `a != b` is written `not a == b` on bound values (`!=` is a
# built-in call there). Helper booleans have `default ... := false`: rego-cpp memoises a rule's
# value only when it is defined.
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

# Whether each role names a registered agent (its entry bound, not tested as an object).
default delegatee_registered := false

delegatee_registered if {
	input.kind == "delegation"
	_ = lib.agents[input.delegatee]
}

default receiver_registered := false

receiver_registered if {
	input.destination.type == "agent"
	_ = lib.agents[input.destination.id]
}

# The agents the chain's hops name, and those of them in the registry.
hop_agents contains id if {
	some hop in lib.chain
	some id in [hop.delegator, hop.delegatee]
}

registered_hop_agents contains id if {
	some id in hop_agents
	_ = lib.agents[id]
}

# A registered agent's trust score as object.get(entry, "trust_score", 0) reads it, without
# copying the entry.
subject_score := s if {
	s := lib.agent.trust_score
} else := 0 if lib.registered

delegatee_score := s if {
	input.kind == "delegation"
	s := lib.agents[input.delegatee].trust_score
} else := 0 if delegatee_registered

receiver_score := s if {
	input.destination.type == "agent"
	s := lib.agents[input.destination.id].trust_score
} else := 0 if receiver_registered

hop_scores[id] := s if {
	some id in registered_hop_agents
	s := object.get(lib.agents[id], "trust_score", 0)
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
	not lib.registered
	id := input.subject.id
	msg := sprintf("agent %s is not registered", [id])
}

deny contains reason("L7.unregistered_agent", ["T9", "T13"], msg) if {
	input.kind == "delegation"
	not delegatee_registered
	id := input.delegatee
	msg := sprintf("agent %s is not registered", [id])
}

deny contains reason("L7.unregistered_agent", ["T9", "T13"], msg) if {
	input.destination.type == "agent"
	not receiver_registered
	id := input.destination.id
	msg := sprintf("agent %s is not registered", [id])
}

deny contains reason("L7.unregistered_agent", ["T9", "T13"], msg) if {
	lib.chained
	some id in hop_agents
	not registered_hop_agents[id]
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
	not authenticated_as_subject
	msg := sprintf("the request claims to come from %s but the caller authenticated as %v", [input.subject.id, authenticated])
}

# `input.subject.id in authenticated`, as a scan of the (short) list rather than the
# membership built-in.
default authenticated_as_subject := false

authenticated_as_subject if {
	subject := input.subject.id
	some s in input.state.caller.authenticated_subjects
	s == subject
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
	score := subject_score
	score < lib.trust_min
	id := input.subject.id
	msg := sprintf("agent %s has trust score %v, below the minimum %v", [id, score, lib.trust_min])
}

deny contains reason("L7.trust_below_threshold", ["T13", "T16"], msg) if {
	input.kind == "delegation"
	score := delegatee_score
	score < lib.trust_min
	id := input.delegatee
	msg := sprintf("agent %s has trust score %v, below the minimum %v", [id, score, lib.trust_min])
}

deny contains reason("L7.trust_below_threshold", ["T13", "T16"], msg) if {
	input.destination.type == "agent"
	score := receiver_score
	score < lib.trust_min
	id := input.destination.id
	msg := sprintf("agent %s has trust score %v, below the minimum %v", [id, score, lib.trust_min])
}

deny contains reason("L7.trust_below_threshold", ["T13", "T16"], msg) if {
	lib.chained
	some id, score in hop_scores
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
	presented := presented_digest
	not presented == approved
	msg := sprintf("tool %s is described by %s, not by its approved description digest %s", [input.action, presented, approved])
}

# object.get(input, ["tool", "digest"], "no digest"), without copying the input.
default presented_digest := "no digest"

presented_digest := input.tool.digest

deny contains reason("L7.tool_description_mismatch", ["T16", "T47", "T17"], msg) if {
	server := lib.tool.server
	presented := input.tool.server
	not presented == server
	msg := sprintf("tool %s is served by %s, not by its registered server %s", [input.action, presented, server])
}

# A bridge call crossing to another chain follows a route the registry grants: the source
# chain's `bridge_to` lists the destination (absent: no crossing), itself a registered chain.
# The crossing is also an external destination (lib.outbound_to), so the cross-layer leak
# rules judge it as they judge any send outside.
default bridge_granted := false

bridge_granted if {
	to := input.transaction.to_chain
	some listed in lib.chains[input.transaction.chain].bridge_to
	listed == to
	_ = lib.chains[to]
}

# METADATA
# title: Cross-chain bridge crossing not granted
# description: >-
#   A transaction crosses from its chain to another (`to_chain`) along a route the registry
#   does not grant (the chain's `bridge_to`), or to a chain the registry does not know.
# custom:
#   rule: L7.bridge_crossing_not_granted
#   layer: l7_agent_ecosystem
#   threats: [T37]
#   mitigations: [output_egress_dlp]
deny contains reason("L7.bridge_crossing_not_granted", ["T37"], msg) if {
	lib.crossing
	not bridge_granted
	msg := sprintf("agent %s bridges from %s to %s, a crossing the registry does not grant", [input.subject.id, input.transaction.chain, input.transaction.to_chain])
}

# A tool changes the routing graph unless its registry entry says `modifies_routing: false`, and a
# store holds the routing graph unless it says `routing_graph: false`: an entry that says nothing
# is judged as the riskier case, so leaving the field out never loosens a decision.
default tool_leaves_routing := false

tool_leaves_routing if lib.tool.modifies_routing == false

default store_not_routing := false

store_not_routing if lib.stores[input.destination.id].routing_graph == false

# METADATA
# title: Routing graph change needs a human
# description: A change to the agent routing graph (who talks to whom) waits for human approval.
# custom:
#   rule: L7.routing_change_requires_approval
#   layer: l7_agent_ecosystem
#   threats: [T12, T13, T25]
#   mitigations: [routing_graph_integrity, hitl_escalation]
hitl contains reason("L7.routing_change_requires_approval", ["T12", "T13", "T25"], msg) if {
	not tool_leaves_routing
	_ = lib.tools[input.action] # a registered tool (an unknown one is refused by L3 already)
	msg := sprintf("agent %s changes the routing graph with %s", [input.subject.id, input.action])
}

hitl contains reason("L7.routing_change_requires_approval", ["T12", "T13", "T25"], msg) if {
	lib.is_movement
	input.destination.type == "store"
	not store_not_routing
	operation := input.operation
	not operation == "read"
	msg := sprintf("agent %s writes into the routing graph store %s", [input.subject.id, input.destination.id])
}

obligations := set()
