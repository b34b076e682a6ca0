"""Approvals and controls in PostgreSQL, for replicas that share the audit database."""

from __future__ import annotations

from typing import Any

import psycopg

from maestro_gate.approvals.sql import SqlApprovalStore


class PostgresApprovalStore(SqlApprovalStore):
    """SqlApprovalStore on PostgreSQL; a vote locks the approval row with `FOR UPDATE`."""

    begin = "BEGIN"
    lock = " FOR UPDATE"
    placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def connect(self) -> Any:
        """An autocommit connection (transactions are opened explicitly)."""
        return psycopg.connect(self.dsn, autocommit=True)
