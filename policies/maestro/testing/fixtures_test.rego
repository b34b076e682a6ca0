# Shared fixtures for the policy unit tests: agent ids of the example registry and helpers.
#
# Tests set the input one top-level key at a time (`with input.kind as ...`): regopy 1.5.2
# (rego-cpp) crashes the process on `with input as <object>` once a policy compares an input
# value, so the project's runner refuses whole-input replacement. A `with` value must be a
# literal (or contain references inside a literal): a bare rule reference such as
# `with input.delegatee as t.reporter` evaluates as undefined there. Every `with` also makes
# rego-cpp copy the rules it touches, so tests keep to few `with` clauses and the decision's
# combination is tested as a pure function; whole-bundle decisions are covered by the
# scenario tests (tests/scenarios), which set the input through the engine instead.
package maestro.testing

import rego.v1

orchestrator := "spiffe://corp.example/agent/orchestrator"

collector_web := "spiffe://corp.example/agent/collector-web"

collector_feeds := "spiffe://corp.example/agent/collector-feeds"

doc_ingest := "spiffe://corp.example/agent/doc-ingest"

analyst_security := "spiffe://corp.example/agent/analyst-security"

analyst_finance := "spiffe://corp.example/agent/analyst-finance"

reporter := "spiffe://corp.example/agent/reporter"

coder := "spiffe://corp.example/agent/coder"

researcher := "spiffe://corp.example/agent/researcher"

mcp_gateway := "spiffe://corp.example/agent/mcp-gateway"

partner := "spiffe://corp.example/agent/partner-summarizer"

treasury := "spiffe://corp.example/agent/treasury"

stranger := "spiffe://corp.example/agent/analyst-security-2"

# Whether a set of reasons contains one with the given rule id.
fires(reasons, id) if {
	some r in reasons
	r.rule == id
}
