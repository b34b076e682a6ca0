"""Faults answer their documented code, never 500: integer parameters, a full or read-only store.

The store faults are SQLite's own limits set on the gate's own connections (the audit writer's
and the approval store's, one file): `PRAGMA query_only` makes the file read-only and
`PRAGMA max_page_count` at the current size makes it full, with no tmpfs to mount.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.api.audit import MAX_INDEX
from maestro_gate.audit.export import verify
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.config import Settings
from maestro_gate.wiring import sqlite_path
from tests.auth_support import act, gate_settings
from tests.conftest import action

HUGE = [2**63 - 1, 2**63, 2**64, -(2**63) - 1, MAX_INDEX + 1, 10**400]
INTEGER_PARAMETERS = [
    "/v1/audit/entries?start={}",
    "/v1/audit/entries?end={}",
    "/v1/audit/proof/inclusion?index={}",
    "/v1/audit/proof/inclusion?index=0&tree_size={}",
    "/v1/audit/proof/consistency?first={}",
    "/v1/audit/proof/consistency?first=1&second={}",
    "/v1/approvals?limit={}",
]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("template", INTEGER_PARAMETERS)
def test_an_integer_parameter_past_its_bound_is_422_not_500(
    client: TestClient, template: str, value: int
) -> None:
    """Every integer parameter refuses values past its schema bound with `invalid_request`."""
    response = client.get(template.format(value))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/audit/proof/inclusion?index={MAX_INDEX}",
        f"/v1/audit/proof/inclusion?index=0&tree_size={MAX_INDEX}",
        f"/v1/audit/proof/consistency?first={MAX_INDEX}",
        f"/v1/audit/proof/consistency?first=1&second={MAX_INDEX}",
        "/v1/audit/proof/consistency?first=2&second=1",
    ],
)
def test_an_index_within_bounds_the_log_does_not_reach_is_404(
    client: TestClient, path: str
) -> None:
    """At the bound, a size or index past the log is 404 `resource_not_found`: no such proof."""
    client.post("/v1/decide", json=action())
    response = client.get(path)
    assert (response.status_code, response.json()["code"]) == (404, "resource_not_found")


@pytest.mark.parametrize(
    ("query", "page"),
    [(f"start={MAX_INDEX}", (MAX_INDEX, 1)), ("start=1&end=0", (1, 1)), ("start=0&end=0", (0, 0))],
)
def test_pages_the_schema_admits_are_answered(
    client: TestClient, query: str, page: tuple[int, int]
) -> None:
    """A page starting past the log, or ending at or before its start, is empty, not refused."""
    client.post("/v1/decide", json=action())
    response = client.get(f"/v1/audit/entries?{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["entries"], body["start"], min(body["end"], body["start"])) == ([], *page)


def test_integer_parameters_document_their_bounds(client: TestClient) -> None:
    """The OpenAPI document states the bound each integer parameter is checked against."""
    paths = client.get("/openapi.json").json()["paths"]
    bounds = {
        (path, p["name"]): _maximum(p["schema"])
        for path, item in paths.items()
        for operation in item.values()
        for p in operation.get("parameters", [])
        if "integer" in str(p["schema"])
    }
    assert bounds
    assert {b for (path, _), b in bounds.items() if path.startswith("/v1/audit")} == {MAX_INDEX}
    assert bounds[("/v1/approvals", "limit")] == 1000


def _maximum(schema: dict[str, Any]) -> Any:
    """The `maximum` of an integer schema, or of its integer branch in an `anyOf`."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if "maximum" in branch:
            return branch["maximum"]
    return None


# Large enough that each audit record needs pages of its own, so a full file refuses every record.
IRREVERSIBLE = act(
    "files.delete", reversible=False, arguments={"path": "/srv", "note": "n" * 20_000}
)


def _connections(client: TestClient) -> list[sqlite3.Connection]:
    """The gate's own writing connections to the audit file: the log's and the approvals'."""
    gate = client.app.state.gate  # type: ignore[attr-defined]
    return [gate.audit._conn, gate.services.approvals._conn]


def _break(client: TestClient, fault: str) -> None:
    audit, approvals = _connections(client)
    if fault == "read-only":
        for conn in (audit, approvals):
            conn.execute("PRAGMA query_only = ON")
        return
    audit.execute("CREATE TABLE IF NOT EXISTS fault_filler (blob BLOB)")
    (pages,) = audit.execute("PRAGMA page_count").fetchone()
    for conn in (audit, approvals):
        conn.execute(f"PRAGMA max_page_count = {pages}")
    while True:  # take every free page: the file cannot grow, and no free page is left
        try:
            audit.execute("INSERT INTO fault_filler VALUES (zeroblob(512))")
        except sqlite3.OperationalError:
            break


def _mend(client: TestClient) -> None:
    for conn in _connections(client):
        conn.execute("PRAGMA query_only = OFF")
        conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[TestClient, Settings, dict[str, dict[str, str]]]]:
    """The gate with an approval store, its settings and the principals' headers."""
    settings, headers = gate_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        yield client, settings, headers


def _pending(client: TestClient, headers: dict[str, dict[str, str]]) -> str:
    decided = client.post("/v1/decide", json=IRREVERSIBLE, headers=headers["runtime"]).json()
    assert decided["decision"] == "require_hitl"
    approval_id: str = decided["approval"]["id"]
    first = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["alice"])
    assert first.status_code == 200
    return approval_id


def _state(
    client: TestClient, settings: Settings, headers: dict[str, Any], approval_id: str
) -> tuple[Any, ...]:
    """The approval as stored and the log's size, read without the gate."""
    approval = client.get(f"/v1/approvals/{approval_id}", headers=headers["auditor"]).json()
    log = SqliteAuditLog(sqlite_path(settings.audit_dsn))
    return approval["status"], approval["approvals"], approval.get("used_by"), log.count()


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_vote_on_a_broken_store_is_503_and_changes_nothing(
    gate: tuple[TestClient, Settings, dict[str, dict[str, str]]], fault: str
) -> None:
    """Voting while the audit store is full or read-only: 503 `audit_unavailable`, no change."""
    client, settings, headers = gate
    approval_id = _pending(client, headers)
    before = _state(client, settings, headers, approval_id)
    _break(client, fault)
    vote = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["bob"])
    _mend(client)
    assert (vote.status_code, vote.json()["code"]) == (503, "audit_unavailable"), vote.text
    assert _state(client, settings, headers, approval_id) == before
    again = client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["bob"])
    assert again.json()["status"] == "granted"


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_granted_resubmission_on_a_broken_store_is_503_and_keeps_the_approval(
    gate: tuple[TestClient, Settings, dict[str, dict[str, str]]], fault: str
) -> None:
    """Re-submitting with a granted approval on a broken store: 503, the approval stays usable."""
    client, settings, headers = gate
    approval_id = _pending(client, headers)
    client.post(f"/v1/approvals/{approval_id}/approve", headers=headers["bob"])
    before = _state(client, settings, headers, approval_id)
    assert before[0] == "granted"
    resubmit = {**IRREVERSIBLE, "approval_id": approval_id}
    _break(client, fault)
    answer = client.post("/v1/decide", json=resubmit, headers=headers["runtime"])
    _mend(client)
    assert (answer.status_code, answer.json()["code"]) == (503, "audit_unavailable"), answer.text
    assert "decision" not in answer.json()
    assert _state(client, settings, headers, approval_id) == before
    allowed = client.post("/v1/decide", json=resubmit, headers=headers["runtime"]).json()
    assert allowed["decision"] == "allow"
    log = SqliteAuditLog(sqlite_path(settings.audit_dsn))
    assert verify(log.verifier_rows(), None, []).ok


def test_a_use_whose_record_cannot_be_written_leaves_the_approval_granted(
    gate: tuple[TestClient, Settings, dict[str, dict[str, str]]],
) -> None:
    """A full file that still takes the small `used` update but not the record: no change."""
    client, settings, headers = gate
    small = act("files.delete", reversible=False, arguments={"path": "/srv/reports"})
    decided = client.post("/v1/decide", json=small, headers=headers["runtime"]).json()
    approval_id = decided["approval"]["id"]
    for who in ("alice", "bob"):
        client.post(f"/v1/approvals/{approval_id}/approve", headers=headers[who])
    before = _state(client, settings, headers, approval_id)
    _break(client, "full")
    answer = client.post(
        "/v1/decide", json={**small, "approval_id": approval_id}, headers=headers["runtime"]
    )
    _mend(client)
    assert answer.status_code == 503
    assert _state(client, settings, headers, approval_id) == before
