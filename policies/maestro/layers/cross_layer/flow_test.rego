package maestro.layers.cross_layer_flow_test

import rego.v1

import data.maestro.layers.cross_layer as cl
import data.maestro.testing as t

hop(from, to, scopes, ttl) := {"delegator": from, "delegatee": to, "scopes": scopes, "ttl_seconds": ttl}

test_restricted_provenance_to_external_denies if {
	t.fires(cl.deny, "CL.restricted_provenance_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "export"
		with input.data as {"classification": "internal", "provenance": ["incident-db", t.analyst_security, "reports"]}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
}

test_restricted_provenance_to_external_allows_internal_destination if {
	not t.fires(cl.deny, "CL.restricted_provenance_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "copy"
		with input.data as {"classification": "confidential", "provenance": ["incident-db"]}
		with input.source as {"type": "store", "id": "incident-db"}
		with input.destination as {"type": "store", "id": "analysis-outputs"}
}

test_restricted_session_to_external_denies if {
	t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "export"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.context as {"delegation_chain": [hop(t.analyst_security, t.reporter, [], 600)]}
		with input.state as {"session": {"recent": [
			{"kind": "agent_action", "action": "sql_query", "classification": "restricted", "decision": "allow"},
			{"kind": "data_movement", "classification": "internal", "decision": "allow"},
		]}}
}

test_restricted_session_to_external_ignores_refused_reads if {
	not t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.reporter}
		with input.operation as "export"
		with input.data as {"classification": "internal"}
		with input.source as {"type": "store", "id": "reports"}
		with input.destination as {"type": "external", "id": "reports.partner.example"}
		with input.state as {"session": {"recent": [{"kind": "agent_action", "action": "sql_query", "classification": "restricted", "decision": "deny"}]}}
}

test_restricted_session_to_external_allows_internal_after_restricted_read if {
	not t.fires(cl.deny, "CL.restricted_session_to_external") with input.kind as "data_movement"
		with input.subject as {"id": t.analyst_security}
		with input.operation as "write"
		with input.data as {"classification": "confidential"}
		with input.source as {"type": "agent", "id": t.analyst_security}
		with input.destination as {"type": "store", "id": "analysis-outputs"}
		with input.state as {"session": {"recent": [{"kind": "agent_action", "action": "sql_query", "classification": "restricted", "decision": "allow"}]}}
}
