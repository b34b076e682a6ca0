# L6 Security & Compliance: autonomy boundaries per autonomy class, dual control for
# irreversible actions, the emergency stop, and per-agent quotas and budgets.
package maestro.layers.l6_security_compliance

import rego.v1

import data.maestro.lib

layer := "l6_security_compliance"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats, "message": message}

# rego-cpp cost notes (regopy 1.5.2): every built-in call copies the VM state (object.get also
# copies the object it reads), and an object used as a condition is serialised. So registry and
# input fields are read by path with `default` or `else`, membership is tested by scanning, and
# each rule body starts with its cheapest guard so that requests where nothing fires stay cheap.

default autonomy := "directed"

autonomy := lib.agent.autonomy

default_unattended := {"directed": ["read", "write"], "open_ended": ["read"]}

# The risk classes the agent may exercise without a human: its own override, else its class's.
unattended := risks if {
	risks := lib.agent.unattended_risks
} else := risks if {
	risks := lib.autonomy_classes[autonomy].unattended_risks
} else := risks if {
	risks := default_unattended[autonomy]
} else := []

# Whether the tool's risk class is one the agent may exercise unattended.
default risk_unattended := false

risk_unattended if {
	risk := lib.tool_risk
	some unattended_risk in unattended
	unattended_risk == risk
}

# METADATA
# title: Action beyond the agent's autonomy boundary
# description: >-
#   The tool's risk class is outside what the agent's autonomy class (directed or open-ended)
#   may do unattended; a human decides. Irreversible actions are left to dual control.
# custom:
#   rule: L6.autonomy_boundary_exceeded
#   layer: l6_security_compliance
#   threats: [T7, T24]
#   mitigations: [policy_bound_autonomy]
hitl contains reason("L6.autonomy_boundary_exceeded", ["T7", "T24"], msg) if {
	risk := lib.tool_risk
	not lib.irreversible
	not risk_unattended
	lib.registered
	msg := sprintf("%s agent %s may run only %v actions unattended; %s is %s", [autonomy, input.subject.id, unattended, input.action, risk])
}

# METADATA
# title: Directed agent acting without a task
# description: A directed agent works only on assigned tasks; a side-effecting request without a task id is refused.
# custom:
#   rule: L6.directed_task_required
#   layer: l6_security_compliance
#   threats: [T6, T7]
#   mitigations: [policy_bound_autonomy]
deny contains reason("L6.directed_task_required", ["T6", "T7"], msg) if {
	not input.context.task_id
	lib.side_effecting
	autonomy == "directed"
	lib.registered
	msg := sprintf("directed agent %s makes a %s request with side effects outside any task (no task id)", [input.subject.id, input.kind])
}

# METADATA
# title: Irreversible action needs two approvers
# description: An irreversible action (by the tool's risk class or the request's own flag) waits for two independent humans.
# custom:
#   rule: L6.irreversible_dual_control
#   layer: l6_security_compliance
#   threats: [T10, T15]
#   mitigations: [human_dual_control]
hitl contains object.union(reason("L6.irreversible_dual_control", ["T10", "T15"], msg), {"approvers": 2}) if {
	lib.irreversible
	msg := sprintf("%s by agent %s cannot be undone and needs two approvers", [input.action, input.subject.id])
}

# --- on-chain transactions ---------------------------------------------------------------

# A transacting tool (lib.transacting: any tool the registry does not give a non-transacting
# risk class) is called with a `transaction` whose chain, contract and method the registry's
# `chains` section grants; its value is capped per agent and chain (`transaction_caps`, absent:
# nothing above 0) and needs two humans above the chain's `dual_control_above` (absent: always).
# The gate cannot see the signed transaction: the wallet signer must sign only what was decided
# (an approval binds the declared transaction, GATE.approval_mismatch otherwise).
default transaction_declared := false

transaction_declared if _ := input.transaction.chain

default chain_registered := false

chain_registered if _ := lib.chains[input.transaction.chain]

default contract_registered := false

contract_registered if _ := lib.chains[input.transaction.chain].contracts[input.transaction.contract]

default method_granted := false

method_granted if {
	some method in lib.chains[input.transaction.chain].contracts[input.transaction.contract]
	method == input.transaction.method
}

# Why the declared transaction is not granted, when it is not (the first reason that holds).
transaction_refusal := msg if {
	not transaction_declared
	msg := sprintf("agent %s calls %s, which the registry does not mark as non-transacting, without declaring its transaction", [input.subject.id, input.action])
} else := msg if {
	not chain_registered
	msg := sprintf("agent %s transacts on chain %s, which the registry's chains do not grant", [input.subject.id, input.transaction.chain])
} else := msg if {
	not contract_registered
	msg := sprintf("agent %s calls contract %s on %s, which the registry does not list for that chain", [input.subject.id, input.transaction.contract, input.transaction.chain])
} else := msg if {
	not method_granted
	msg := sprintf("agent %s calls method %s of contract %s on %s, which the registry does not grant", [input.subject.id, input.transaction.method, input.transaction.contract, input.transaction.chain])
}

# METADATA
# title: Transaction outside the registry's chains, contracts and methods
# description: >-
#   A tool that transacts on chain (any tool the registry does not give a non-transacting risk
#   class) is called without a transaction, or with a chain, contract or method the registry's
#   `chains` section does not grant: a flawed or look-alike contract could act with the agent's
#   authority.
# custom:
#   rule: L6.transaction_not_allowlisted
#   layer: l6_security_compliance
#   threats: [T36, T2]
#   mitigations: [least_privilege_tool_scoping, policy_bound_autonomy]
deny contains reason("L6.transaction_not_allowlisted", ["T36", "T2"], msg) if {
	lib.transacting
	msg := transaction_refusal
}

# The agent's cap on the transaction's chain; 0 (nothing above 0) when the registry sets none.
default value_cap := 0

value_cap := cap if {
	cap := lib.agent.transaction_caps[input.transaction.chain]
	is_number(cap)
}

# METADATA
# title: Transaction value above the agent's cap
# description: The transaction moves more than the agent's `transaction_caps` allow on that chain (no cap on record allows nothing above 0).
# custom:
#   rule: L6.transaction_value_exceeds_cap
#   layer: l6_security_compliance
#   threats: [T36, T32]
#   mitigations: [per_agent_quota_budgets]
deny contains reason("L6.transaction_value_exceeds_cap", ["T36", "T32"], msg) if {
	lib.transacting
	value := input.transaction.value
	value > value_cap
	msg := sprintf("agent %s transfers %v on %s; its cap there is %v", [input.subject.id, value, input.transaction.chain, value_cap])
}

# The chain's dual-control threshold; undefined when the registry sets none (then every
# transaction on the chain needs two approvers).
dual_control_above := limit if {
	limit := lib.chains[input.transaction.chain].dual_control_above
	is_number(limit)
}

default dual_control_set := false

dual_control_set if _ := dual_control_above

# METADATA
# title: Transaction above the dual-control threshold
# description: A transaction whose value is above its chain's `dual_control_above` (every transaction, when the registry sets none) waits for two approvers.
# custom:
#   rule: L6.transaction_dual_control
#   layer: l6_security_compliance
#   threats: [T36, T10]
#   mitigations: [human_dual_control]
hitl contains object.union(reason("L6.transaction_dual_control", ["T36", "T10"], msg), {"approvers": 2}) if {
	lib.transacting
	value := input.transaction.value
	value > dual_control_above
	msg := sprintf("agent %s transfers %v on %s, above the chain's dual-control threshold %v: two approvers", [input.subject.id, value, input.transaction.chain, dual_control_above])
}

hitl contains object.union(reason("L6.transaction_dual_control", ["T36", "T10"], msg), {"approvers": 2}) if {
	lib.transacting
	transaction_declared
	not dual_control_set
	msg := sprintf("agent %s transacts on %s, for which the registry sets no dual-control threshold: two approvers", [input.subject.id, input.transaction.chain])
}

# Every agent the request would set in motion: the subject and, for a delegation, the delegatee.
actors contains input.subject.id

actors contains input.delegatee if lib.is_delegation

actors contains input.destination.id if input.destination.type == "agent"

# METADATA
# title: Agent under emergency stop
# description: The subject, the delegatee or the receiving agent has been stopped by an operator.
# custom:
#   rule: L6.emergency_stop_agent
#   layer: l6_security_compliance
#   threats: [T13, T7]
#   mitigations: [emergency_stop]
deny contains reason("L6.emergency_stop_agent", ["T13", "T7"], msg) if {
	some stopped in lib.stopped_agents
	some who in actors
	who == stopped
	msg := sprintf("agent %s is under emergency stop", [who])
}

# METADATA
# title: Agent class under emergency stop
# description: The class of the subject, the delegatee or the receiving agent has been stopped by an operator.
# custom:
#   rule: L6.emergency_stop_class
#   layer: l6_security_compliance
#   threats: [T13, T7]
#   mitigations: [emergency_stop]
deny contains reason("L6.emergency_stop_class", ["T13", "T7"], msg) if {
	some stopped in lib.stopped_classes
	some who in actors
	class := lib.agents[who].class
	class == stopped
	msg := sprintf("agent class %s (agent %s) is under emergency stop", [class, who])
}

rate_per_minute := rate if {
	rate := lib.agent.rate_limit_per_minute
} else := rate if {
	rate := lib.thresholds.rate_limit_per_minute
} else := 600

allowed_in_window := (rate_per_minute * lib.window_seconds) / 60

# METADATA
# title: Request rate above the agent's quota
# description: The agent has already made as many requests in the current window as its quota allows.
# custom:
#   rule: L6.rate_limit_exceeded
#   layer: l6_security_compliance
#   threats: [T4, T32, T39]
#   mitigations: [per_agent_quota_budgets]
deny contains reason("L6.rate_limit_exceeded", ["T4", "T32", "T39"], msg) if {
	lib.requests_in_window >= allowed_in_window
	msg := sprintf("agent %s made %d requests in %ds; its quota is %v per minute", [input.subject.id, lib.requests_in_window, lib.window_seconds, rate_per_minute])
}

budget := limit if {
	limit := lib.agent.budget_limit
} else := limit if {
	limit := lib.thresholds.budget_limit
} else := 100

# What this request costs: the caller's declared `context.attributes.cost` (a number >= 0), or
# the registry's `tools[action].cost` for a costed tool when that is higher: a caller may declare
# more than the registry says, never less, and leaving the cost out takes the registry's.
# The service reserves the same amount (core/decision/budgets.py) before it asks, and spends it when
# the request is allowed. Compared with `>`: rego-cpp's max compares number texts.
default declared_cost := 0

declared_cost := c if {
	c := input.context.attributes.cost
	is_number(c)
	c >= 0
}

default registry_cost := 0

registry_cost := c if {
	lib.is_action
	c := lib.tools[input.action].cost
	is_number(c)
	c >= 0
}

request_cost := registry_cost if registry_cost > declared_cost

else := declared_cost

# METADATA
# title: Budget exhausted
# description: >-
#   The agent has spent its budget for the period, or this request's cost would take its spend
#   past the limit (spent + cost > limit, with the cost the registry gives a costed tool).
# custom:
#   rule: L6.budget_exhausted
#   layer: l6_security_compliance
#   threats: [T4, T32, T39]
#   mitigations: [per_agent_quota_budgets]
deny contains reason("L6.budget_exhausted", ["T4", "T32", "T39"], msg) if {
	lib.budget_spent >= budget
	msg := sprintf("agent %s has spent %v of its budget of %v", [input.subject.id, lib.budget_spent, budget])
}

deny contains reason("L6.budget_exhausted", ["T4", "T32", "T39"], msg) if {
	lib.budget_spent + request_cost > budget
	lib.budget_spent < budget
	msg := sprintf("agent %s has spent %v of its budget of %v; this request costs %v", [input.subject.id, lib.budget_spent, budget, request_cost])
}

obligations := set()
