# Acting on an on-chain event (T33): the registry's confirmation depth per chain, with the
# nearest case that passes.
package maestro.layers.l4_deployment_infrastructure.chain_event_test

import rego.v1

import data.maestro.layers.l4_deployment_infrastructure as l4
import data.maestro.testing as t

test_chain_event_unconfirmed_denies_an_event_below_the_chains_depth if {
	some r in l4.deny with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.trigger as {"chain": "solana-mainnet", "confirmations": 31}
	r.rule == "L4.chain_event_unconfirmed"
	contains(r.message, "31 confirmations")
}

test_chain_event_unconfirmed_allows_an_event_at_the_chains_depth if {
	not t.fires(l4.deny, "L4.chain_event_unconfirmed") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.trigger as {"chain": "solana-mainnet", "confirmations": 32}
}

# Any action may respond to an event, not only a transaction (a refund, a shipment).
test_chain_event_unconfirmed_judges_an_off_chain_action_too if {
	t.fires(l4.deny, "L4.chain_event_unconfirmed") with input.kind as "agent_action"
		with input.subject as {"id": t.analyst_finance}
		with input.action as "memory_write"
		with input.trigger as {"chain": "ethereum-mainnet", "confirmations": 3}
}

test_chain_event_unconfirmed_denies_an_event_on_an_unregistered_chain if {
	t.fires(l4.deny, "L4.chain_event_unconfirmed") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.trigger as {"chain": "base-mainnet", "confirmations": 1000}
}

test_chain_event_unconfirmed_denies_a_chain_without_a_depth if {
	t.fires(l4.deny, "L4.chain_event_unconfirmed") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.trigger as {"chain": "solana-mainnet", "confirmations": 1000}
		with data.maestro.registry.chains as {"solana-mainnet": {"contracts": {}}}
}

test_chain_event_unconfirmed_ignores_an_action_without_a_trigger if {
	not t.fires(l4.deny, "L4.chain_event_unconfirmed") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
}
