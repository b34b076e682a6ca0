"""Real storage faults for the readiness and fault-injection tests: a small tmpfs to fill or turn
read-only, a PostgreSQL database of the test's own, and polling without decision traffic."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from maestro_gate.audit.export import verify
from maestro_gate.audit.postgres import PostgresAuditLog
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.audit.store import TreeLog

PG_DSN = os.environ.get("MAESTRO_GATE_TEST_PG_DSN")


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


class SmallDisk:
    """A tmpfs of a few MiB mounted for one test: fill it, free it, remount it read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write a file until the file system has no byte left."""
        chunk = b"\0" * 65536
        with self.filler.open("ab") as out:
            try:
                while True:
                    out.write(chunk)
                    out.flush()
            except OSError:
                pass
        # A last partial block: write byte by byte until nothing more fits.
        with self.filler.open("ab", buffering=0) as out:
            try:
                while out.write(b"\0"):
                    pass
            except OSError:
                pass

    def free(self) -> None:
        """Remove the filler file."""
        self.filler.unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        """Remount read-only (only possible while no file on it is open for writing) or back."""
        done = _mount("-o", f"remount,{'ro' if on else 'rw'}", str(self.path))
        assert done.returncode == 0, done.stderr


@contextmanager
def small_disk(path: Path, size: str = "3m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of `size` at `path`; skip the test where this machine cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        _mount("-o", "remount,rw", str(path))
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def own_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own on the test server; yield its DSN."""
    if not PG_DSN:
        pytest.skip("MAESTRO_GATE_TEST_PG_DSN is not set (CI sets it via .ci/run)")
    name = f"maestro_fault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(PG_DSN)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def set_read_only(dsn: str, on: bool) -> None:
    """Make a test database refuse writes (as a standby would) or take them again, at once."""
    name = urlsplit(dsn).path.lstrip("/")
    assert PG_DSN is not None
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        setting = sql.SQL(
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        conn.execute(sql.SQL("ALTER DATABASE {} ").format(sql.Identifier(str(name))) + setting)
        # The setting applies to new sessions: end the gate's, so its pool reconnects.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll `condition` every 50 ms for up to `seconds`; True once it holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def log_verifies(log: TreeLog) -> None:
    """Assert the store's log verifies from its first record to its last."""
    report = verify(log.verifier_rows(), None, [])
    assert report.ok, report.problem


def logged_ids(log: TreeLog) -> set[str]:
    """Every decision (and event) id in the log."""
    return {row.record.split(b'"decision_id":"')[1][:36].decode() for row in log.rows()}


def sqlite_log(path: Path) -> SqliteAuditLog:
    """A reader of a SQLite audit file (not started)."""
    return SqliteAuditLog(path)


def postgres_log(dsn: str) -> PostgresAuditLog:
    """A reader of a PostgreSQL audit database's public schema (not started)."""
    return PostgresAuditLog(dsn)
