# L3 workflows, over what the gate itself recorded in the session (`state.session.recent`): a
# declared plan runs in order and never past a validation step (T19), a task's shared state is
# acted on at its newest version (T21), a peer is reached only over a channel the registry
# grants and the runtime declares secure (T30), and a per-session store gives a session only
# what the session itself wrote there (T31).
#
# Cost: every body starts with a test that fails at once for a request without a plan, a state
# version, a channel or a per-session store (memoised booleans with defaults, or an input path
# that is undefined); the history is scanned only after it.
package maestro.layers.l3_agent_frameworks

import rego.v1

import data.maestro.lib

# --- plan order (T19) -----------------------------------------------------------------------

default planned := false

planned if {
	some _ in input.context.plan
}

# The request as a plan step names it, as state/activity.py records it: the tool of an action,
# the operation of a movement, `delegate` for a delegation.
step_name := input.action if lib.is_action

else := input.operation if lib.is_movement

else := "delegate" if lib.is_delegation

default request_task := ""

request_task := input.context.task_id

# The steps of the plan that already ran: the subject's requests of this task that the gate
# allowed earlier in the session (its other agents' entries, a denied or waiting request, or
# another task's, do not count). The gate enforced the order of each, so they are the plan's
# first steps. A history window shorter than the plan forgets the first steps: the count is then
# short and the next request is refused (fail closed).
steps_done := n if {
	planned
	n := count([e |
		some e in lib.recent
		e.agent == input.subject.id
		e.decision == "allow"
		object.get(e, "task_id", "") == request_task
	])
}

# The request is the plan's next step.
default on_plan := false

on_plan if input.context.plan[steps_done].action == step_name

default plan_finished := false

plan_finished if {
	planned
	steps_done >= count(input.context.plan)
}

# METADATA
# title: Workflow step out of order
# description: >-
#   A request under a declared plan is not the plan's next step, given the steps of the task
#   the gate recorded as allowed in the session, or comes after every step of the plan ran.
# custom:
#   rule: L3.workflow_step_out_of_order
#   layer: l3_agent_frameworks
#   threats: [T19]
#   mitigations: [plan_vs_goal_validation]
deny contains reason("L3.workflow_step_out_of_order", ["T19"], msg) if {
	planned
	not on_plan
	next := input.context.plan[steps_done]
	msg := sprintf("agent %s runs %s, but the next step of its plan is step %d, %s (%d step(s) of task %s ran)", [input.subject.id, step_name, steps_done + 1, next.action, steps_done, request_task])
}

deny contains reason("L3.workflow_step_out_of_order", ["T19"], msg) if {
	plan_finished
	msg := sprintf("agent %s runs %s after all %d step(s) of its plan for task %s ran", [input.subject.id, step_name, steps_done, request_task])
}

# The first later step the request is, when it skips ahead in the plan.
skip_to := later[0] if {
	planned
	not on_plan
	later := [j | s := input.context.plan[j]; s.action == step_name; j > steps_done]
}

# METADATA
# title: Validation step skipped
# description: A request under a declared plan runs a later step while a step the plan declares a validation has not run.
# custom:
#   rule: L3.validation_step_skipped
#   layer: l3_agent_frameworks
#   threats: [T19]
#   mitigations: [plan_vs_goal_validation]
deny contains reason("L3.validation_step_skipped", ["T19"], msg) if {
	planned
	to := skip_to
	before := to - 1
	skipped := [k | some k in numbers.range(steps_done, before); input.context.plan[k].validation == true]
	first := skipped[0]
	msg := sprintf("agent %s runs %s (step %d of its plan) before validation step %d, %s, ran", [input.subject.id, step_name, to + 1, first + 1, input.context.plan[first].action])
}

# --- workflow state versions (T21) ---------------------------------------------------------

# METADATA
# title: Stale workflow state
# description: >-
#   The request acts on a version of its task's shared workflow state older than one the gate
#   recorded an allowed request of the same task acting on, earlier in the session or chain.
# custom:
#   rule: L3.stale_workflow_state
#   layer: l3_agent_frameworks
#   threats: [T21]
deny contains reason("L3.stale_workflow_state", ["T21"], msg) if {
	version := input.context.state_version
	task := input.context.task_id
	newer := [v | some e in lib.recent; e.task_id == task; e.decision == "allow"; v := e.state_version; v > version]
	_ := newer[0]
	msg := sprintf("agent %s acts on version %d of the workflow state of task %s, but the session already acted on version(s) %v", [input.subject.id, version, task, newer])
}

# --- inter-agent channels (T30) ------------------------------------------------------------

# Who the request's channel reaches: the delegatee, the movement's destination, or the tool's
# registered server (else the tool itself).
peer := input.delegatee if lib.is_delegation

else := input.destination.id if lib.is_movement

else := server if {
	lib.is_action
	server := lib.tools[input.action].server
} else := input.action if lib.is_action

# The subject's registry `channels` grant the named channel towards the peer, or towards every
# peer (`*`). Scans: an entry without `channels` grants nothing on both engines.
default channel_granted := false

channel_granted if {
	id := input.context.channel.id
	some c in lib.agent.channels[peer]
	c == id
}

channel_granted if {
	id := input.context.channel.id
	some c in lib.agent.channels["*"]
	c == id
}

# METADATA
# title: Channel not granted for the peer
# description: The request travels over a channel the subject's registry entry does not grant towards that peer.
# custom:
#   rule: L3.channel_not_granted
#   layer: l3_agent_frameworks
#   threats: [T30]
#   mitigations: [message_signing]
deny contains reason("L3.channel_not_granted", ["T30"], msg) if {
	id := input.context.channel.id
	not channel_granted
	to := peer
	msg := sprintf("agent %s reaches %s over channel %s, which its registry entry does not grant for that peer", [input.subject.id, to, id])
}

default channel_secure := false

channel_secure if {
	input.context.channel.authenticated == true
	input.context.channel.encrypted == true
}

# METADATA
# title: Insecure channel
# description: The runtime declares the request's channel unauthenticated or unencrypted (a flag left out counts as false).
# custom:
#   rule: L3.channel_insecure
#   layer: l3_agent_frameworks
#   threats: [T30]
#   mitigations: [message_signing]
deny contains reason("L3.channel_insecure", ["T30"], msg) if {
	id := input.context.channel.id
	not channel_secure
	msg := sprintf("agent %s sends over channel %s, which is not declared both authenticated and encrypted", [input.subject.id, id])
}

# --- per-session stores (T31) --------------------------------------------------------------

# A store the registry does not mark `session_shared: true` keeps each session's data apart.
# The per-session stores the request names, whatever type the caller gives them: a movement's
# source and destination, an action's target. Three bodies that each start with one lookup, and
# everything else behind `uses_session_store`: a rule referencing a set is evaluated before the
# loop over it on rego-cpp, so the history is scanned only in a separately guarded rule.
session_stores contains s if {
	s := input.source.id
	not lib.stores[s].session_shared == true
	_ := lib.stores[s]
}

session_stores contains s if {
	s := input.destination.id
	not lib.stores[s].session_shared == true
	_ := lib.stores[s]
}

session_stores contains s if {
	s := input.target.id
	not lib.stores[s].session_shared == true
	_ := lib.stores[s]
}

default uses_session_store := false

uses_session_store if {
	some _ in session_stores
}

# The ones the request reads: a movement's source, the target of an action whose tool reads.
session_store_reads contains s if {
	lib.is_movement
	s := input.source.id
	session_stores[s]
}

session_store_reads contains s if {
	lib.tool_risk == "read"
	s := input.target.id
	session_stores[s]
}

# The stores the session (the subject and its chain) wrote with allowed requests: a movement
# that is no read, or an action whose tool the registry classifies as other than read.
session_written contains s if {
	some e in lib.recent
	e.kind == "data_movement"
	e.decision == "allow"
	not e.action == "read"
	s := e.destination
}

session_written contains s if {
	some e in lib.recent
	e.kind == "agent_action"
	e.decision == "allow"
	risk := lib.tools[e.action].risk_class
	not risk == "read"
	s := e.target
}

unwritten_reads := session_store_reads - session_written if uses_session_store

# METADATA
# title: Read across sessions
# description: >-
#   A request reads a per-session store (one the registry does not mark session_shared) that
#   its session has not written, so what it would read is another session's; or uses such a
#   store without naming a session at all.
# custom:
#   rule: L3.cross_session_read
#   layer: l3_agent_frameworks
#   threats: [T31]
#   mitigations: [context_isolation]
deny contains reason("L3.cross_session_read", ["T31"], msg) if {
	uses_session_store
	some s in unwritten_reads
	msg := sprintf("agent %s reads per-session store %s, which its session has not written: the data there is another session's", [input.subject.id, s])
}

deny contains reason("L3.cross_session_read", ["T31"], msg) if {
	uses_session_store
	not input.subject.session_id
	some s in session_stores
	msg := sprintf("agent %s uses per-session store %s without a session id", [input.subject.id, s])
}
