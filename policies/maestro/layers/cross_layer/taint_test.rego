package maestro.layers.cross_layer.taint_test

import rego.v1

import data.maestro.layers.cross_layer as cl
import data.maestro.testing as t

# Issue 21 item 4: the gate lists in state.session.recent the entries of every agent of the
# request's delegation chain in the same session, each naming its agent; a restricted read by
# the delegator taints the delegate's export.
chain := {"delegation_chain": [{"delegator": t.analyst_security, "delegatee": t.reporter, "scopes": [], "ttl_seconds": 600}]}

test_delegators_restricted_read_taints_the_delegates_export if {
	t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter, "session_id": "s-9"}
		with input.operation as "export"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.context as chain
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "read", "classification": "restricted", "destination_type": "agent", "decision": "allow"}]}}
}

test_delegators_internal_read_leaves_the_export_alone if {
	not t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter, "session_id": "s-9"}
		with input.operation as "export"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.context as chain
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "read", "classification": "internal", "destination_type": "agent", "decision": "allow"}]}}
}

# What the gate knows wins: a read of the restricted incident-db labelled public still taints.
test_a_relabelled_read_of_a_restricted_store_taints_the_export if {
	t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter, "session_id": "s-9"}
		with input.operation as "export"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.context as chain
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "read", "source": "incident-db", "classification": "public", "destination_type": "agent", "decision": "allow"}]}}
}

test_a_read_of_an_internal_store_leaves_the_export_alone if {
	not t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter, "session_id": "s-9"}
		with input.operation as "export"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.context as chain
		with input.state as {"session": {"recent": [{"agent": t.analyst_security, "kind": "data_movement", "action": "read", "source": "reports", "classification": "internal", "destination_type": "agent", "decision": "allow"}]}}
}
