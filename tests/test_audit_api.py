"""The `/v1/audit` routes over the real app, and the record schema they serve, pinned."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

import maestro_gate.core.ledger
from maestro_gate.api.app import create_app
from maestro_gate.audit.checkpoint_keys import verify_note
from maestro_gate.core.decision.callers import AGENT, ANY_SUBJECT, AUDITOR
from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.checkpoint import VerifierKey
from maestro_gate.core.ledger.records import decision_record, event_record
from tests.conftest import action, make_settings
from tests.credentials import key_header, write_keys_file

SCHEMA_FILE = Path(maestro_gate.core.ledger.__file__).parent / "record.schema.json"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, dict[str, str]]:
    """Headers of an agent and an auditor principal."""
    raw = write_keys_file(
        tmp_path / "keys.json", {"agent": ([AGENT], [ANY_SUBJECT]), "auditor": ([AUDITOR], [])}
    )
    return {name: key_header(key) for name, key in raw.items()}


@pytest.fixture
def client(tmp_path: Path, bundle: Path, keys: dict[str, dict[str, str]]) -> Iterator[TestClient]:
    """The app on a tmp SQLite log with ten decisions made through `/v1/decide`."""
    settings = make_settings(
        tmp_path, bundle, api_keys_file=tmp_path / "keys.json", checkpoint_interval_s=0
    )
    with TestClient(create_app(settings)) as test_client:
        for i in range(10):
            tool = "shell.exec" if i % 3 == 0 else f"web.search.{i}"
            response = test_client.post("/v1/decide", json=action(tool), headers=keys["agent"])
            assert response.status_code == 200, response.text
        yield test_client


def _hex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_fresh_checkpoint_is_signed_by_the_exported_key(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    """`?fresh=true` signs the current size; the note verifies with the served public key."""
    body = client.get("/v1/audit/checkpoint?fresh=true", headers=keys["auditor"]).json()
    assert body["tree_size"] == 10
    signer_key = client.app.state.gate.checkpointer.signer.verifier_key  # type: ignore[attr-defined]
    checkpoint = verify_note(body["note"], VerifierKey(signer_key.name, signer_key.public_key))
    assert checkpoint.root.hex() == body["root"]
    latest = client.get("/v1/audit/checkpoint", headers=keys["auditor"]).json()
    assert latest == body


def test_entries_are_export_lines_whose_records_hash_to_their_leaves(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    """A page of entries carries OPA fields and the exact record; leaf hashes recompute."""
    page = client.get("/v1/audit/entries?start=2&end=5", headers=keys["auditor"]).json()
    assert [e["index"] for e in page["entries"]] == [2, 3, 4]
    for entry in page["entries"]:
        assert entry["path"] == "maestro/decision/result"
        assert entry["bundles"]["maestro"]["revision"] == "test-1"
        assert merkle.leaf_hash(entry["record"].encode()).hex() == entry["leaf_hash"]
        record = json.loads(entry["record"])
        assert {**record["input"], "state": record["state"]} == entry["input"]  # schema 2
    one = client.get(
        f"/v1/audit/entries/{page['entries'][0]['decision_id']}", headers=keys["auditor"]
    )
    assert one.json() == page["entries"][0]


def test_inclusion_and_consistency_proofs_verify_against_the_signed_root(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    """Proofs default to the latest checkpoint's size and verify against its root."""
    auditor = keys["auditor"]
    early = client.get("/v1/audit/checkpoint?fresh=true", headers=auditor).json()
    client.post("/v1/decide", json=action("web.more"), headers=keys["agent"])
    late = client.get("/v1/audit/checkpoint?fresh=true", headers=auditor).json()
    proof = client.get("/v1/audit/proof/inclusion?index=4", headers=auditor).json()
    assert proof["tree_size"] == late["tree_size"] == 11
    merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 4, 11, _hex(proof["proof"]), bytes.fromhex(late["root"])
    )
    consistency = client.get(
        f"/v1/audit/proof/consistency?first={early['tree_size']}", headers=auditor
    ).json()
    merkle.verify_consistency(
        early["tree_size"],
        11,
        bytes.fromhex(early["root"]),
        bytes.fromhex(late["root"]),
        _hex(consistency["proof"]),
    )


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/audit/entries/no-such-decision", 404, "resource_not_found"),
        ("/v1/audit/proof/inclusion?index=10&tree_size=10", 404, "resource_not_found"),
        ("/v1/audit/proof/inclusion?index=0&tree_size=99", 404, "resource_not_found"),
        ("/v1/audit/proof/consistency?first=5&second=3", 404, "resource_not_found"),
        ("/v1/audit/proof/consistency?first=99", 404, "resource_not_found"),
    ],
)
def test_bad_requests_use_the_error_tree(
    client: TestClient, keys: dict[str, dict[str, str]], path: str, status: int, code: str
) -> None:
    """Unknown decisions and proofs that do not exist (schema-valid, beyond the log) are 404."""
    response = client.get(path, headers=keys["auditor"])
    assert response.status_code == status
    assert response.json()["code"] == code


def test_audit_routes_need_the_auditor_role(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    """Anonymous callers get 401 and agents 403 on the audit routes."""
    assert client.get("/v1/audit/checkpoint").status_code == 401
    assert client.get("/v1/audit/checkpoint", headers=keys["agent"]).status_code == 403


def test_records_written_by_the_service_match_the_published_schema(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    """Every record the service wrote validates against record.schema.json."""
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    page = client.get("/v1/audit/entries", headers=keys["auditor"]).json()
    for entry in page["entries"]:
        jsonschema.validate(json.loads(entry["record"]), schema)


def _sealed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "index": 0, "prev": "0" * 64}


def test_schema_pins_the_record_fields() -> None:
    """The schema names exactly the fields records.py writes, and refuses unknown ones; a
    schema-2 decision record must carry `state`, a schema-1 one must not."""
    schema = json.loads(SCHEMA_FILE.read_text())
    decision = _sealed(
        decision_record(
            decision_id="d",
            timestamp="2026-01-01T00:00:00.000000+00:00",
            kind="agent_action",
            subject="spiffe://x/y",
            decision="allow",
            result={"decision": "allow"},
            policy={"revision": "r", "digest": "d", "engine": "embedded"},
            mode="enforce",
            approval=None,
            masked_input={},
            input_sha256="a" * 64,
            trace_id=None,
        )
    )
    event = _sealed(
        event_record(
            event_id="e", timestamp="2026-01-01T00:00:00Z", type="x", subject=None, detail={}
        )
    )
    jsonschema.validate(decision, schema)
    jsonschema.validate(event, schema)
    declared = set(schema["oneOf"][0]["properties"]) - {"shadow_layers", "state"}
    assert declared == set(decision)
    with_state = {**decision, "schema": 2, "state": {"now_ns": "1"}}
    jsonschema.validate(with_state, schema)
    with pytest.raises(jsonschema.ValidationError):  # schema 1 carries no state
        jsonschema.validate({**with_state, "schema": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):  # event records stay schema 1
        jsonschema.validate({**event, "schema": 2}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**decision, "surprise": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**decision, "schema": 2}, schema)
