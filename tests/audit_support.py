"""Shared pieces of the audit tests: real stores (SQLite file, PostgreSQL schema), records, keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from maestro_gate.audit.checkpoint_keys import CheckpointSigner, load_signer
from maestro_gate.audit.postgres import PostgresAuditLog
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.audit.store import TreeLog
from maestro_gate.core.ledger.records import decision_record

PG_DSN = os.environ.get("MAESTRO_GATE_TEST_PG_DSN")
ORIGIN = "test.example/audit"
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not PG_DSN, reason="MAESTRO_GATE_TEST_PG_DSN is not set (CI sets it via .ci/run)"
            ),
        ],
    ),
]


def body(n: int, **overrides: Any) -> dict[str, Any]:
    """A realistic decision record body (what DecisionPoint appends), varied by `n`."""
    document = {
        "kind": "agent_action",
        "subject": {"id": "spiffe://corp.example/agent/analyst", "session_id": f"s{n % 7}"},
        "action": "shell.exec" if n % 3 == 0 else "web.search",
        "arguments": {"query": f"quarterly report {n}", "limit": n % 50, "ratio": 0.25},
        "context": {"trace_id": f"trace-{n}", "delegation_chain": []},
    }
    denied = n % 3 == 0
    reasons = (
        [
            {
                "rule": "L3.tool_not_allowlisted",
                "layer": "l3_agent_frameworks",
                "threats": ["T2"],
                "message": "tool shell.exec is not allowlisted",
            }
        ]
        if denied
        else []
    )
    record = decision_record(
        decision_id=str(uuid.uuid4()),
        timestamp=f"2026-01-01T00:00:{n % 60:02d}.{n:06d}+00:00",
        kind="agent_action",
        subject="spiffe://corp.example/agent/analyst",
        decision="deny" if denied else "allow",
        result={
            "decision": "deny" if denied else "allow",
            "reasons": reasons,
            "obligations": [],
            "layers": {"l3_agent_frameworks": "deny" if denied else "allow"},
            "approvers_required": 0,
        },
        policy={"revision": "2026.01", "digest": "sha256:" + "ab" * 32, "engine": "embedded"},
        mode="enforce",
        approval=None,
        masked_input=document,
        input_sha256="cd" * 32,
        trace_id=f"trace-{n}",
    )
    record.update(overrides)
    return record


class Database:
    """Raw SQL on the store's own tables, to play the attacker (or the test's inspector)."""

    def __init__(self, log: TreeLog) -> None:
        self.log = log

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own committed transaction; return rows, if any."""
        if isinstance(self.log, SqliteAuditLog):
            import sqlite3

            conn = sqlite3.connect(self.log.path, isolation_level=None)
            try:
                cursor = conn.execute(statement, params)
                return list(cursor.fetchall())
            finally:
                conn.close()
        assert isinstance(self.log, PostgresAuditLog)
        with psycopg.connect(self.log.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.log.schema)))
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return list(cursor.fetchall()) if cursor.description else []


def make_store(kind: str, tmp_path: Path, schema: str | None = None) -> TreeLog:
    """A new, not yet started store of `kind` (its own file, or its own PostgreSQL schema)."""
    if kind == "sqlite":
        return SqliteAuditLog(tmp_path / "audit.db", synchronous="NORMAL")
    assert PG_DSN is not None
    return PostgresAuditLog(PG_DSN, schema=schema or f"t_{uuid.uuid4().hex[:16]}")


def drop_schema(log: TreeLog) -> None:
    """Remove a PostgreSQL test schema (no-op for SQLite, whose file lives in tmp_path)."""
    if isinstance(log, PostgresAuditLog):
        with psycopg.connect(log.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(log.schema))
            )


def started(kind: str, tmp_path: Path) -> Iterator[TreeLog]:
    """Yield a started store and clean it up afterwards."""
    log = make_store(kind, tmp_path)
    log.start()
    try:
        yield log
    finally:
        log.close()
        drop_schema(log)


def signer(tmp_path: Path) -> CheckpointSigner:
    """A checkpoint signer with a fresh key under tmp_path."""
    created, _ = load_signer(tmp_path / "checkpoint.key", ORIGIN, create=True)
    return created
