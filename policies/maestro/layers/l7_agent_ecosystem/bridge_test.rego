# Cross-chain bridges (T37): a crossing follows a route the registry grants, and counts as an
# external destination; each with the nearest case that passes.
package maestro.layers.l7_agent_ecosystem.bridge_test

import rego.v1

import data.maestro.layers.cross_layer as cl
import data.maestro.layers.l7_agent_ecosystem as l7
import data.maestro.testing as t

worm := "wormDTUJ6AWPNvk59vGQbDvGJmqbDTdgWgAqcLBCgUb"

test_bridge_crossing_not_granted_denies_an_ungranted_route if {
	some r in l7.deny with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "ethereum-mainnet", "contract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "method": "transfer", "value": 1, "to_chain": "solana-mainnet"}
	r.rule == "L7.bridge_crossing_not_granted"
	contains(r.message, "ethereum-mainnet to solana-mainnet")
}

test_bridge_crossing_not_granted_allows_a_granted_route if {
	not t.fires(l7.deny, "L7.bridge_crossing_not_granted") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": worm, "method": "transfer_tokens", "value": 1, "to_chain": "ethereum-mainnet"}
}

test_bridge_crossing_not_granted_allows_a_transaction_that_stays_on_its_chain if {
	not t.fires(l7.deny, "L7.bridge_crossing_not_granted") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "ethereum-mainnet", "contract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "method": "transfer", "value": 1, "to_chain": "ethereum-mainnet"}
}

test_bridge_crossing_not_granted_denies_a_route_to_an_unregistered_chain if {
	t.fires(l7.deny, "L7.bridge_crossing_not_granted") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": worm, "method": "transfer_tokens", "value": 1, "to_chain": "ethereum-mainnet"}
		with data.maestro.registry.chains as {"solana-mainnet": {"bridge_to": ["ethereum-mainnet"]}}
}

test_bridge_crossing_not_granted_denies_every_crossing_without_bridge_to if {
	t.fires(l7.deny, "L7.bridge_crossing_not_granted") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": worm, "method": "transfer_tokens", "value": 1, "to_chain": "ethereum-mainnet"}
		with data.maestro.registry.chains as {"solana-mainnet": {}, "ethereum-mainnet": {}}
}

# The bridge is an external destination: after a restricted read in the session, no crossing.
test_a_crossing_after_a_restricted_read_is_a_leak_outside if {
	t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury, "session_id": "s-1"}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": worm, "method": "transfer_tokens", "value": 1, "to_chain": "ethereum-mainnet"}
		with input.state as {"session": {"recent": [{"kind": "data_movement", "classification": "restricted", "decision": "allow"}]}}
}

test_a_transaction_on_its_own_chain_is_not_a_send_outside if {
	not t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "agent_action"
		with input.subject as {"id": t.treasury, "session_id": "s-1"}
		with input.action as "chain_transact"
		with input.transaction as {"chain": "solana-mainnet", "contract": worm, "method": "transfer_tokens", "value": 1}
		with input.state as {"session": {"recent": [{"kind": "data_movement", "classification": "restricted", "decision": "allow"}]}}
}
