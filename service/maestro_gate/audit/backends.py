"""Choosing the audit store from a DSN: `sqlite:///PATH` or `postgresql://…`."""

from __future__ import annotations

from pathlib import Path

from maestro_gate.audit.postgres import PostgresAuditLog
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.audit.store import TreeLog

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(dsn: str) -> bool:
    """True for a PostgreSQL DSN."""
    return dsn.startswith(POSTGRES_SCHEMES)


def sqlite_file(dsn: str) -> Path:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` DSN."""
    if not dsn.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite:/// or postgresql:// DSN: {dsn!r}")
    return Path(dsn[len("sqlite:///") :])


def open_log(dsn: str, *, synchronous: str = "FULL") -> TreeLog:
    """The audit store a DSN names (not started: call `start()` to append)."""
    if is_postgres(dsn):
        return PostgresAuditLog(dsn)
    return SqliteAuditLog(sqlite_file(dsn), synchronous=synchronous)
