"""The Threat Mapper on a log of real decisions: the service on the real bundle decides a day's
traffic (TestClient, embedded engine, SQLite), then each report is read over HTTP and from the
CLI and checked for the findings the traffic and the registry were built to show."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maestro_gate.cli import main
from maestro_gate.core.decision.callers import APPROVER
from tests.conftest import POLICIES, live_client, make_settings
from tests.credentials import EVERYTHING, key_header, write_keys_file

A = "spiffe://corp.example/agent/"
REGISTRY = json.loads((POLICIES / "maestro/registry/data.json").read_text())
TRACE = {"trace_id": "trace-posture", "task_id": "posture"}


def test_registry() -> dict[str, Any]:
    """The example registry with two deployer mistakes the reports must find: an external-mail
    tool granted with no human in the loop, and a store nobody classified."""
    registry = copy.deepcopy(REGISTRY)
    registry["tools"]["status_email"] = {
        "risk_class": "write",
        "sandbox_required": False,
        "external": True,
        "modifies_routing": False,
        "clearance": "internal",
        "network": False,
    }
    registry["agents"][A + "mcp-gateway"]["tools"]["status_email"] = {}
    registry["stores"]["scratch"] = {"tenant": "corp", "writers": ["*"], "description": "tmp"}
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]  # a builder, not a test


def movement(agent: str, source: tuple[str, str], destination: tuple[str, str], **extra: Any):  # type: ignore[no-untyped-def]
    """A data movement request body."""
    body = {
        "kind": "data_movement",
        "subject": {"id": A + agent},
        "data": extra.pop("data", {"classification": extra.pop("classification", "internal")}),
        "source": {"type": source[0], "id": source[1]},
        "destination": {"type": destination[0], "id": destination[1]},
        "operation": extra.pop("operation", "copy"),
        "context": TRACE,
    }
    return {**body, **extra}


TRAFFIC: dict[str, dict[str, Any]] = {
    "search": {
        "kind": "agent_action",
        "subject": {"id": A + "collector-web"},
        "action": "web_search",
        "arguments": {"query": "advisories", "max_results": 10},
        "execution": {"location": "cloud", "egress": ["api.search.example"]},
        "context": TRACE,
    },
    "sql_by_collector": {
        "kind": "agent_action",
        "subject": {"id": A + "collector-web"},
        "action": "sql_query",
        "arguments": {},
        "execution": {"location": "cloud"},
        "context": TRACE,
    },
    "triage": {
        "kind": "delegation",
        "subject": {"id": A + "orchestrator"},
        "delegatee": A + "analyst-security",
        "task": {"goal": "Triage advisories", "scopes": ["kb:read", "analysis:read"]},
        "ttl_seconds": 3600,
        "context": TRACE,
    },
    "to_gateway": {
        "kind": "delegation",
        "subject": {"id": A + "orchestrator"},
        "delegatee": A + "mcp-gateway",
        "task": {"goal": "File tickets", "scopes": []},
        "ttl_seconds": 3600,
        "context": TRACE,
    },
    "handoff": movement(
        "collector-web", ("agent", A + "collector-web"), ("agent", A + "analyst-finance")
    ),
    "export": movement(
        "reporter",
        ("store", "reports"),
        ("external", "reports.partner.example"),
        classification="public",
        operation="export",
    ),
}


# Restricted-provenance data written to the internal reports store: the policy allows it, or
# escalates it (L2.declassification_requires_approval) and allows it once approved.
DECLASSIFY = movement(
    "analyst-security",
    ("agent", A + "analyst-security"),
    ("store", "reports"),
    data={"classification": "internal", "provenance": ["incident-db"]},
)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    """The service on the real bundle with the test registry, after deciding TRAFFIC."""
    tmp = tmp_path_factory.mktemp("posture")
    keys = write_keys_file(
        tmp / "keys.json",
        {"tester": EVERYTHING, "alice": ([APPROVER], []), "bob": ([APPROVER], [])},
    )
    (tmp / "tester.key").write_text(keys["tester"])
    registry = tmp / "registry.json"
    registry.write_text(json.dumps(test_registry()))
    settings = make_settings(tmp, POLICIES, registry_file=registry)
    with live_client(settings) as client:
        assert client.get("/ready").status_code == 200, client.get("/v1/status").text
        ids = {}
        for name, body in TRAFFIC.items():
            answer = client.post("/v1/decide", json=body)
            assert answer.status_code == 200, answer.text
            ids[name] = answer.json()["decision_id"]
        ids["declassified"], escalations = allowed(client, keys, DECLASSIFY)
        ids["escalations"] = str(escalations)
        yield client, ids, tmp


def allowed(client: TestClient, keys: dict[str, str], body: dict[str, Any]) -> tuple[str, int]:
    """The id of an allowed decision on `body` (approved by alice and bob if it is escalated),
    and the number of require_hitl answers on the way."""
    first = client.post("/v1/decide", json=body).json()
    if first["decision"] == "allow":
        return str(first["decision_id"]), 0
    ticket = first["approval"]
    for who in ("alice", "bob")[: ticket["approvers_required"]]:
        vote = client.post(f"/v1/approvals/{ticket['id']}/approve", headers=key_header(keys[who]))
        assert vote.status_code == 200, vote.text
    again = client.post("/v1/decide", json={**body, "approval_id": ticket["id"]}).json()
    assert again["decision"] == "allow", again
    return str(again["decision_id"]), 1


def edge(report: dict[str, Any], source: str, target: str, kind: str) -> dict[str, Any]:
    """The report's row for one edge."""
    [row] = [
        e
        for e in report["edges"]
        if e["from"] == A + source and e["to"] == A + target and e["kind"] == kind
    ]
    return row


def test_topology_tells_used_denied_unused_and_accidental_edges(served: Any) -> None:
    """A declared delegation used, one refused with its rule, a declared edge never used, and an
    agent-to-agent copy no delegation declares, seen allowed and confirmed by the policy."""
    client, ids, _ = served
    report = client.get("/v1/posture/topology").json()
    assert report["schema"] == "maestro-gate/posture/topology/v1"
    assert report["window"]["decisions"] == len(TRAFFIC) + 1 + int(ids["escalations"])
    used = edge(report, "orchestrator", "analyst-security", "delegation")
    assert (used["status"], used["observed"]["allow"]) == ("used", 1)
    denied = edge(report, "orchestrator", "mcp-gateway", "delegation")
    assert denied["observed"]["deny"] == 1
    assert denied["stopped_by"]["CL.delegation_not_in_topology"] == 1
    unused = edge(report, "orchestrator", "coder", "delegation")
    assert unused in report["declared_unused"]
    handoff = edge(report, "collector-web", "analyst-finance", "data_movement")
    assert handoff in report["undeclared_allowed"]
    assert handoff["allowed_decision_ids"] == [ids["handoff"]]
    assert handoff["policy"]["decision"] == "allow"
    assert report["bound"]["complete"] is True
    assert f'"{A}collector-web" -> "{A}analyst-finance"' in report["dot"]


def test_topology_cli_writes_dot_and_svg(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints the table and writes the DOT graph and, with Graphviz, its SVG."""
    _, _, tmp = served
    args = ["--bundle", str(POLICIES), "--registry", str(tmp / "registry.json")]
    dsn = f"sqlite:///{tmp / 'audit.db'}"
    out = ["--dot", str(tmp / "t.dot"), "--svg", str(tmp / "t.svg")]
    assert main(["posture", "topology", *args, "--dsn", dsn, *out]) == 0
    table = capsys.readouterr().out
    assert "undeclared_allowed" in table
    assert (tmp / "t.dot").read_text().startswith("digraph topology {")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed (make test-tools installs it)")
    assert "<svg" in (tmp / "t.svg").read_text()


def test_permissions_rank_unused_grants_and_find_uncovered_risk(served: Any) -> None:
    """Used, denied (with its rule) and unused grants per agent; the riskiest unused grant
    first; the external-mail grant allowed with no HITL is found, publication (dual control)
    is not."""
    client, _, _ = served
    report = client.get("/v1/posture/permissions").json()
    agents = {a["agent"]: a for a in report["agents"]}
    collector = agents[A + "collector-web"]
    assert collector["used"] == {"web_search": 1}
    assert collector["denied"]["sql_query"]["rules"] == {"L3.tool_not_allowlisted": 1}
    assert [g["tool"] for g in collector["unused"]] == ["http_fetch"]
    ranked = report["unused_ranked"]
    assert ranked[0]["tool"] == "report_publish"
    assert ranked == sorted(ranked, key=lambda g: -g["risk"])
    uncovered = {(g["agent"], g["tool"]) for g in report["uncovered_risky"]}
    assert (A + "mcp-gateway", "status_email") in uncovered
    assert (A + "reporter", "report_publish") not in uncovered


def test_classification_lists_the_downward_move_and_unclassified_store(served: Any) -> None:
    """Restricted-provenance data written to the internal reports store, allowed (outright or
    on approval): the one allowed downward move, listed by its decision id; the unclassified
    store is named; the matrix counts the allow and any escalation."""
    client, ids, _ = served
    report = client.get("/v1/posture/classification").json()
    [move] = report["downward_allowed"]
    assert move["decision_id"] == ids["declassified"]
    assert (move["from_level"], move["to_level"]) == ("restricted", "internal")
    [cell] = [
        m
        for m in report["matrix"]
        if (m["source_level"], m["destination_level"]) == ("restricted", "internal")
    ]
    assert (cell["allow"], cell["require_hitl"]) == (1, int(ids["escalations"]))
    assert report["unclassified"]["stores"] == ["scratch"]


def test_blast_radius_over_http_reaches_restricted_stores_through_delegation(served: Any) -> None:
    """A compromised feed collector reaches the restricted incident database through its
    declared delegation to the security analyst, as the policy allows; ranked first."""
    client, _, _ = served
    size = client.get("/v1/audit/entries").json()["size"]
    report = client.get("/v1/posture/blast-radius", params={"agent": "collector-feeds"}).json()
    assert report["highest_classification"] == "restricted"
    assert report["ranked"][0]["classification"] == "restricted"
    stores = {(s["id"], s["operation"]): s for s in report["reach"]["store"]}
    incident = stores[("incident-db", "read")]
    assert incident["decision"] == "allow"
    assert incident["path"] == [A + "collector-feeds", A + "analyst-security"]
    assert ("acme-matters", "read") not in stores  # another tenant's store stays shut
    assert client.get("/v1/audit/entries").json()["size"] == size  # nothing was written
    not_auditor = {"X-API-Key": ""}
    assert client.get("/v1/posture/topology", headers=not_auditor).status_code == 401
    refused = client.get("/v1/posture/blast-radius", params={"agent": "nobody"})
    assert refused.status_code == 404
    assert refused.json()["code"] == "resource_not_found"


def blast(tmp: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """`posture blast-radius --json` on the real bundle."""
    assert main(["posture", "blast-radius", "--bundle", str(POLICIES), "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_blast_radius_grows_when_a_delegation_edge_is_added(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Letting the reporter delegate to the finance analyst (an edge, and a depth of one) opens
    the confidential finance stores to a compromised reporter (--compare-registry)."""
    _, _, tmp = served
    base = tmp / "registry.json"
    wider = test_registry()
    wider["agents"][A + "reporter"]["delegatees"] = [A + "analyst-finance"]
    wider["agents"][A + "reporter"]["max_delegation_depth"] = 1
    (tmp / "wider.json").write_text(json.dumps(wider))
    report = blast(
        tmp,
        capsys,
        "--registry",
        str(base),
        "--compare-registry",
        str(tmp / "wider.json"),
        "--agent",
        "reporter",
    )
    assert report["before"]["highest_classification"] == "internal"
    assert report["after"]["highest_classification"] == "confidential"
    opened = {(i["category"], i["id"], i["operation"]) for i in report["compare"]["opens"]}
    assert ("store", "finance-lens-memory", "read") in opened
    assert ("agent", A + "analyst-finance", "delegate") in opened
    assert report["compare"]["closes"] == []


def test_blast_radius_shrinks_when_a_scope_is_removed(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without `analysis:read` the collector's delegation to the analyst keeps no scope: the
    analyst is still reached, but is not walked, and its restricted stores drop out."""
    _, _, tmp = served
    narrower = test_registry()
    narrower["agents"][A + "collector-feeds"]["scopes"] = ["feeds:read"]
    (tmp / "narrower.json").write_text(json.dumps(narrower))
    before = blast(
        tmp, capsys, "--registry", str(tmp / "registry.json"), "--agent", "collector-feeds"
    )
    after = blast(
        tmp, capsys, "--registry", str(tmp / "narrower.json"), "--agent", "collector-feeds"
    )
    reached = lambda r: {(i["category"], i["id"], i["operation"]) for i in r["ranked"]}  # noqa: E731
    assert ("store", "incident-db", "read") in reached(before) - reached(after)
    stores = lambda r: {i["classification"] for i in r["reach"]["store"]}  # noqa: E731
    assert "restricted" in stores(before)
    assert stores(after) == {"internal", None}  # None: the unclassified scratch store
    assert reached(after) < reached(before)
    assert A + "analyst-security" in {i["id"] for i in after["reach"]["agent"]}  # no scope kept


def test_blast_radius_bound_says_what_it_cut(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bound of 10 evaluations leaves the walk incomplete and says how much was cut."""
    _, _, tmp = served
    report = blast(
        tmp,
        capsys,
        "--registry",
        str(tmp / "registry.json"),
        "--agent",
        "orchestrator",
        "--max-evaluations",
        "10",
    )
    bound = report["bound"]
    assert (bound["evaluations"], bound["complete"]) == (10, False)
    assert bound["cut"] > 0
    assert bound["cut_examples"]
    assert any(i["decision"] == "not_evaluated" for i in report["refused"])


def stride_row(report: dict[str, Any], category: str) -> dict[str, Any]:
    """The orchestrator's row for one STRIDE category."""
    [table] = [t for t in report["orchestrators"] if t["agent"] == A + "orchestrator"]
    [row] = [r for r in table["stride"] if r["category"] == category]
    return row


def test_orchestrator_stride_table_counts_the_refused_delegation(served: Any) -> None:
    """The orchestrator's STRIDE table: elevation of privilege is enforced by
    CL.delegation_not_in_topology (with its tests), which denied the orchestrator once in the
    window; repudiation is enforced but quiet; every category names its catalog threats."""
    client, _, _ = served
    report = client.get("/v1/posture/orchestrator").json()
    assert report["schema"] == "maestro-gate/posture/orchestrator/v1"
    assert [t["agent"] for t in report["orchestrators"]] == [A + "orchestrator"]
    elevation = stride_row(report, "elevation_of_privilege")
    rules = {r["rule"]: r for r in elevation["rules"]}
    assert rules["CL.delegation_not_in_topology"]["denials"] == 1
    assert rules["CL.delegation_not_in_topology"]["tests"]
    assert (elevation["status"], elevation["denials"]) == ("fired", 1)
    assert "T3" in {t["id"] for t in elevation["threats"]}
    repudiation = stride_row(report, "repudiation")
    assert repudiation["status"] == "quiet"
    assert {r["rule"] for r in repudiation["rules"]} >= {"L5.trace_id_required"}


def test_orchestrator_category_without_a_rule_is_a_gap(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog whose repudiation category maps only to a threat no rule cites (T23) shows
    repudiation as a gap, with no rules, in the table and in `gaps`."""
    _, _, tmp = served
    catalog = tmp / "catalog"
    if not catalog.exists():
        shutil.copytree(POLICIES.parent / "catalog", catalog)
        stride = json.loads((catalog / "crosswalk_stride.json").read_text())
        [repudiation] = [c for c in stride["categories"] if c["id"] == "repudiation"]
        repudiation["threats"] = ["T23"]
        (catalog / "crosswalk_stride.json").write_text(json.dumps(stride))
    argv = ["--registry", str(tmp / "registry.json"), "--catalog", str(catalog)]
    dsn = ["--dsn", f"sqlite:///{tmp / 'audit.db'}", "--json"]
    assert main(["posture", "orchestrator", *argv, *dsn]) == 0
    report = json.loads(capsys.readouterr().out)
    row = stride_row(report, "repudiation")
    assert (row["status"], row["rules"], row["threats_without_rule"]) == ("gap", [], ["T23"])
    assert {"agent": A + "orchestrator", "category": "repudiation"} in report["gaps"]


def test_coverage_with_traffic_tells_fired_from_never_fired_from_uncovered(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per layer and threat: T2 at L3 fired (the collector's refused sql_query), T9 at L7 is
    covered but never fired, T5 at L1 has no rule; `catalog coverage --traffic` says the same."""
    client, _, tmp = served
    report = client.get("/v1/posture/coverage").json()
    assert report["schema"] == "maestro-gate/posture/coverage/v1"
    layers = {layer["code"]: {t["id"]: t for t in layer["threats"]} for layer in report["layers"]}
    assert (layers["L3"]["T2"]["status"], layers["L3"]["T2"]["denials"]) == ("fired", 1)
    assert layers["L7"]["T9"]["status"] == "covered_never_fired"
    assert layers["L7"]["T9"]["rules"]
    assert (layers["L1"]["T5"]["status"], layers["L1"]["T5"]["rules"]) == ("no_rule", [])
    states = {t["id"]: t["state"] for layer in layers.values() for t in layer.values()}
    assert (states["T2"], states["T23"], states["T20"]) == ("enforced", "credited", "out_of_reach")
    argv = ["catalog", "coverage", "--traffic", "--policies", str(POLICIES)]
    argv += ["--dsn", f"sqlite:///{tmp / 'audit.db'}"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "covered_never_fired" in table
    assert "no_rule" in table


def test_a_report_on_a_registry_the_engine_does_not_run_is_refused(served: Any) -> None:
    """With the registry file changed on disk but not reloaded, the routes answer 503
    not_ready rather than describe a policy that is not enforced."""
    client, _, tmp = served
    path = tmp / "registry.json"
    kept = path.read_text()
    try:
        changed = test_registry()
        changed["agents"][A + "reporter"]["delegatees"] = [A + "coder"]
        path.write_text(json.dumps(changed))
        refused = client.get("/v1/posture/permissions")
        assert refused.status_code == 503
        assert refused.json()["code"] == "not_ready"
        assert "not the active one" in refused.json()["message"]
    finally:
        path.write_text(kept)
    assert client.get("/v1/posture/permissions").status_code == 200


def test_the_window_bound_counts_the_records_it_did_not_read(served: Any, capsys: Any) -> None:
    """`--max-records 3` reads the newest three records of the window and says how many older
    ones it left out."""
    _, _, tmp = served
    dsn = f"sqlite:///{tmp / 'audit.db'}"
    argv = ["posture", "classification", "--registry", str(tmp / "registry.json"), "--json"]
    assert main([*argv, "--dsn", dsn, "--max-records", "3"]) == 0
    window = json.loads(capsys.readouterr().out)["window"]
    assert window["decisions"] <= 3
    assert window["cut_records"] > 0


def test_blast_radius_is_the_same_on_opa_s_own_engine(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reach the embedded engine reports is the reach OPA's evaluator reports."""
    _, _, tmp = served
    argv = ["--registry", str(tmp / "registry.json"), "--agent", "collector-feeds"]
    reached = [
        {
            (i["category"], i["id"], i["operation"], i["decision"])
            for i in blast(tmp, capsys, *argv, "--engine", engine)["ranked"]
        }
        for engine in ("embedded", "opa-inprocess")
    ]
    assert reached[0] == reached[1]
    assert ("store", "incident-db", "read", "allow") in reached[0]


def test_blast_radius_counts_a_schema_checked_tool_as_reachable(served: Any) -> None:
    """The MCP gateway's Jira tool has a registry input_schema: a candidate is taken as sending
    arguments the schema check passes (as the gate's own check would find them), so the tool
    is reached, not refused as L3.tool_argument_schema_mismatch for want of a check outcome."""
    client, _, _ = served
    report = client.get("/v1/posture/blast-radius", params={"agent": "mcp-gateway"}).json()
    tools = {t["id"]: t for t in report["reach"]["tool"]}
    assert tools["jira_create_issue"]["decision"] != "deny", tools["jira_create_issue"]
    assert "L3.tool_argument_schema_mismatch" not in tools["jira_create_issue"].get("rules", [])
