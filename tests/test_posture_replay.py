"""Schema-2 audit records (the state the policy saw) beside schema-1 ones, and `posture
replay`: old records keep their bytes and verify, a mixed log verifies, exports and proves,
and a candidate bundle's changes are reported from real decisions without writing anything."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.audit.backends import open_log
from maestro_gate.cli import main
from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.chain import seal
from maestro_gate.core.ledger.records import decision_record
from tests.conftest import POLICIES, live_client, make_settings
from tests.test_posture import TRAFFIC, A, test_registry

GOLDEN = Path(__file__).parent / "data" / "audit" / "schema1-export.jsonl"
"""Six schema-1 records exported by the gate before schema 2 (tests/test_posture.py TRAFFIC)."""

RECORD_FIELDS = (
    "decision_id", "timestamp", "kind", "subject", "decision", "result", "policy", "mode",
    "approval", "trace_id", "input_sha256",
)  # fmt: skip


def golden() -> list[dict[str, Any]]:
    """The golden export's lines."""
    return [json.loads(line) for line in GOLDEN.read_text().splitlines()]


def test_schema1_record_bytes_are_unchanged() -> None:
    """Built again by today's decision_record (no state), each golden record seals to the very
    bytes and leaf hash it was exported with."""
    for line in golden():
        stored = json.loads(line["record"])
        assert stored["schema"] == 1
        body = decision_record(
            **{f: stored[f] for f in RECORD_FIELDS}, masked_input=stored["input"]
        )
        _, data, leaf = seal(body, stored["index"], stored["prev"])
        assert data == line["record"].encode()
        assert leaf.hex() == line["leaf_hash"]


def test_a_schema1_export_still_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    """`audit verify --export` of the old export passes."""
    assert main(["audit", "verify", "--export", str(GOLDEN)]) == 0
    assert "ok: 6 records verified" in capsys.readouterr().out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A log holding the six golden schema-1 records, then the same traffic decided today
    (schema 2) through the service with the test registry."""
    tmp = tmp_path_factory.mktemp("replay")
    registry = tmp / "registry.json"
    registry.write_text(json.dumps(test_registry()))
    settings = make_settings(tmp, POLICIES, registry_file=registry)
    log = open_log(settings.audit_dsn)
    log.start()

    async def append_golden() -> list[str]:
        leaves = []
        for line in golden():
            body = json.loads(line["record"])
            del body["index"], body["prev"]
            leaves.append((await log.append(body)).leaf_hash)
        return leaves

    leaves = asyncio.run(append_golden())
    log.close()
    assert leaves == [line["leaf_hash"] for line in golden()]  # same bytes, same chain
    ids = {}
    with live_client(settings) as client:
        for name, body in TRAFFIC.items():
            answer = client.post("/v1/decide", json=body)
            assert answer.status_code == 200, answer.text
            ids[name] = answer.json()["decision_id"]
        yield {"client": client, "ids": ids, "dsn": settings.audit_dsn, "tmp": tmp}


def test_a_mixed_log_verifies_exports_and_proves(
    mixed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Schema 1 and 2 side by side: the store and its export verify; inclusion proofs of a
    schema-1 and a schema-2 record lead to the signed root; a schema-2 export line's OPA
    input is the request plus the state."""
    dsn, tmp, client = mixed["dsn"], mixed["tmp"], mixed["client"]
    assert main(["audit", "verify", "--dsn", dsn]) == 0
    out = tmp / "export.jsonl"
    assert main(["audit", "export", "--dsn", dsn, "--out", str(out)]) == 0
    assert main(["audit", "verify", "--export", str(out)]) == 0
    assert "ok: 12 records verified" in capsys.readouterr().out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    schemas = [json.loads(line["record"])["schema"] for line in lines]
    assert schemas == [1] * 6 + [2] * 6
    assert lines[:6] == golden()  # the old records export exactly as before
    record = json.loads(lines[6]["record"])
    assert lines[6]["input"] == {**record["input"], "state": record["state"]}
    assert record["state"]["agent"]["window_seconds"] == 60
    checkpoint = client.get("/v1/audit/checkpoint", params={"fresh": "true"}).json()
    for index in (0, 11):
        proof = client.get("/v1/audit/proof/inclusion", params={"index": index}).json()
        merkle.verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            index,
            proof["tree_size"],
            [bytes.fromhex(p) for p in proof["proof"]],
            bytes.fromhex(checkpoint["root"]),
        )


def replay(mixed: dict[str, Any], capsys: pytest.CaptureFixture[str], registry: Path) -> Any:
    """`posture replay --json` of the mixed log on the real bundle with `registry`."""
    argv = ["posture", "replay", "--bundle", str(POLICIES), "--registry", str(registry)]
    assert main([*argv, "--dsn", mixed["dsn"], "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_replay_on_the_enforced_bundle_changes_no_recorded_state_decision(
    mixed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every decision with its recorded state comes out the same on the bundle that made it;
    the schema-1 ones are replayed too, counted as approximate."""
    report = replay(mixed, capsys, mixed["tmp"] / "registry.json")
    assert report["schema"] == "maestro-gate/posture/replay/v1"
    assert (report["replayed"], report["approximate"]) == (12, 6)
    assert [c for c in report["changes"] if c["state_recorded"]] == []


def test_replay_reports_what_a_candidate_would_change_and_writes_nothing(
    mixed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A candidate registry granting the collector sql_query and taking web_search away: the
    refused query becomes allow and the search deny, by id, with L3.tool_not_allowlisted and
    l3_agent_frameworks in the totals; the log's bytes are untouched."""
    tmp, ids = mixed["tmp"], mixed["ids"]
    candidate = test_registry()
    tools = candidate["agents"][A + "collector-web"]["tools"]
    tools["sql_query"] = {}
    del tools["web_search"]
    (tmp / "candidate.json").write_text(json.dumps(candidate))
    database = Path(mixed["dsn"].removeprefix("sqlite:///"))
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    report = replay(mixed, capsys, tmp / "candidate.json")
    changes = {c["decision_id"]: c for c in report["changes"] if c["state_recorded"]}
    assert set(changes) == {ids["search"], ids["sql_by_collector"]}
    search, query = changes[ids["search"]], changes[ids["sql_by_collector"]]
    assert (search["before"], search["after"]) == ("allow", "deny")
    assert search["rules_added"] == ["L3.tool_not_allowlisted"]
    assert (query["before"], query["after"]) == ("deny", "allow")
    assert query["layers"]["l3_agent_frameworks"] == ["deny", "allow"]
    assert report["transitions"]["allow->deny"] >= 1
    assert report["transitions"]["deny->allow"] >= 1
    assert report["per_rule"]["L3.tool_not_allowlisted"] >= 2
    assert report["per_layer"]["l3_agent_frameworks"] >= 2
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_recorded_state_is_masked_like_the_input(tmp_path: Path) -> None:
    """A mask pointer under /state/ hides that part of the recorded state, one under
    /arguments/ the argument; the input hash still covers the unmasked request."""
    settings = make_settings(
        tmp_path,
        POLICIES,
        audit_mask=["/arguments/query", "/state/caller/principal"],
    )
    with live_client(settings) as client:
        decided = client.post("/v1/decide", json=TRAFFIC["search"]).json()
        line = client.get(f"/v1/audit/entries/{decided['decision_id']}").json()
    record = json.loads(line["record"])
    assert record["input"]["arguments"]["query"] == "***"
    assert record["state"]["caller"]["principal"] == "***"
    assert record["state"]["caller"]["authenticated_subjects"]


def test_audit_state_off_writes_schema_1_records(tmp_path: Path) -> None:
    """With MAESTRO_GATE_AUDIT_STATE=false a decision record is schema 1, without state."""
    with live_client(make_settings(tmp_path, POLICIES, audit_state=False)) as client:
        decided = client.post("/v1/decide", json=TRAFFIC["search"]).json()
        line = client.get(f"/v1/audit/entries/{decided['decision_id']}").json()
    record = json.loads(line["record"])
    assert record["schema"] == 1
    assert "state" not in record
