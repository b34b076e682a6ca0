# On-chain transactions (T36): the registry's chains, contracts and methods, the agent's value
# caps and the chain's dual-control threshold, each with the nearest case that passes.
package maestro.layers.l6_security_compliance.transaction_test

import rego.v1

import data.maestro.layers.l6_security_compliance as l6
import data.maestro.testing as t

token := "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"

test_a_granted_transaction_within_cap_and_threshold_passes if {
	d := l6.deny with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.context as {"task_id": "settle"}
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 1000}
	count(d) == 0
	h := l6.hitl with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.context as {"task_id": "settle"}
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 1000}
	count(h) == 0
}

test_transaction_not_allowlisted_denies_an_undeclared_transaction if {
	t.fires(l6.deny, "L6.transaction_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
}

# What transacts is the registry's to say: an unknown tool, or one without a risk class, does.
test_transaction_not_allowlisted_denies_an_unknown_tool_without_a_transaction if {
	t.fires(l6.deny, "L6.transaction_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "transfer_funds"
}

test_transaction_not_allowlisted_denies_a_tool_whose_entry_has_no_risk_class if {
	t.fires(l6.deny, "L6.transaction_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with data.maestro.registry.tools as {"kb_search": {"sandbox_required": false}}
}

test_transaction_not_allowlisted_does_not_judge_a_non_transacting_tool if {
	not t.fires(l6.deny, "L6.transaction_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "kb_search"
		with input.transaction as {"chain": "ghost-chain", "contract": "x", "method": "y", "value": 9}
}

test_transaction_not_allowlisted_denies_an_unregistered_chain if {
	some r in l6.deny with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "base-mainnet", "contract": token, "method": "transfer_checked", "value": 1}
	r.rule == "L6.transaction_not_allowlisted"
	contains(r.message, "base-mainnet")
}

test_transaction_not_allowlisted_denies_a_look_alike_contract if {
	some r in l6.deny with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DB", "method": "transfer_checked", "value": 1}
	r.rule == "L6.transaction_not_allowlisted"
	contains(r.message, "does not list")
}

test_transaction_not_allowlisted_denies_an_ungranted_method if {
	some r in l6.deny with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "approve", "value": 0}
	r.rule == "L6.transaction_not_allowlisted"
	contains(r.message, "approve")
}

test_transaction_not_allowlisted_denies_every_chain_without_the_section if {
	t.fires(l6.deny, "L6.transaction_not_allowlisted") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 1}
		with data.maestro.registry.chains as {}
}

test_transaction_value_exceeds_cap_denies_above_the_agents_cap if {
	t.fires(l6.deny, "L6.transaction_value_exceeds_cap") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 5001}
}

test_transaction_value_exceeds_cap_allows_the_cap_itself if {
	not t.fires(l6.deny, "L6.transaction_value_exceeds_cap") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 5000}
}

# An agent without a cap on the chain may move nothing; a call that moves no value passes.
test_transaction_value_exceeds_cap_denies_any_value_without_a_cap if {
	t.fires(l6.deny, "L6.transaction_value_exceeds_cap") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 1}
}

test_transaction_value_exceeds_cap_allows_zero_without_a_cap if {
	not t.fires(l6.deny, "L6.transaction_value_exceeds_cap") with input.kind as "agent_action"
		with input.subject as {"id": t.coder}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 0}
}

test_transaction_dual_control_escalates_above_the_threshold_to_two_approvers if {
	some h in l6.hitl with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 1001}
	h.rule == "L6.transaction_dual_control"
	h.approvers == 2
}

test_transaction_dual_control_allows_the_threshold_itself if {
	not t.fires(l6.hitl, "L6.transaction_dual_control") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 1000}
}

test_transaction_dual_control_escalates_every_transaction_without_a_threshold if {
	t.fires(l6.hitl, "L6.transaction_dual_control") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": token, "method": "transfer_checked", "value": 0}
		with data.maestro.registry.chains as {"solana-mainnet": {"confirmations": 32, "contracts": {"TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA": ["transfer_checked"]}}}
}
