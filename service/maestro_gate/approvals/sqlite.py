"""Approvals and controls in the audit log's SQLite file (WAL; writes take the write lock)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from maestro_gate.approvals.sql import SqlApprovalStore


class SqliteApprovalStore(SqlApprovalStore):
    """SqlApprovalStore on a SQLite file; a vote runs inside `BEGIN IMMEDIATE`."""

    begin = "BEGIN IMMEDIATE"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def connect(self) -> sqlite3.Connection:
        """An autocommit connection in WAL mode with a generous busy timeout."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn
