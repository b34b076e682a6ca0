"""The SQLite audit log: WAL, one writer thread, group commit, durable before acknowledging.

Concurrent `append` calls queue their record bodies; the writer takes every waiting body, seals
them in order after the current tail inside one `BEGIN IMMEDIATE` transaction, commits, and only
then resolves the callers. The tail is read inside the transaction, so several worker processes
sharing one file extend one chain; `idx` is the primary key, so a fork cannot be stored.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maestro_gate.core.chain import GENESIS, seal
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ports import AuditReceipt

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    idx INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL,
    leaf_hash BLOB NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_decision ON audit_records (decision_id);
"""

_Pending = tuple[dict[str, Any], asyncio.Future[AuditReceipt], asyncio.AbstractEventLoop]
_STOP = object()


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with WAL, the given durability and a generous busy timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(SCHEMA)
    return conn


class SqliteAuditLog:
    """AuditLog on a SQLite file; `append` returns once the record's transaction committed."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", batch_max: int = 2048) -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"unsupported synchronous mode {synchronous!r}")
        self.path = path
        self._synchronous = synchronous
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None

    def start(self) -> None:
        """Open the file, create the schema and start the writer thread."""
        conn = connect(self.path, synchronous=self._synchronous)
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="audit-writer", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Finish queued appends and stop the writer."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    async def append(self, record: dict[str, Any]) -> AuditReceipt:
        """Seal and commit one record body; raise AuditUnavailable if it cannot be made durable."""
        if self._thread is None or not self._thread.is_alive():
            raise AuditUnavailable("the audit writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditReceipt] = loop.create_future()
        self._queue.put((record, future, loop))
        return await future

    async def size(self) -> int:
        """Number of records in the file."""
        return await asyncio.to_thread(self.count)

    async def writable(self) -> bool:
        """True while the writer runs and its last commit succeeded."""
        return self._thread is not None and self._thread.is_alive() and self._failure is None

    def count(self) -> int:
        """Number of records, read on a fresh connection."""
        with _reader(self.path) as conn:
            row = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_records").fetchone()
        return int(row[0])

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(index, leaf hash, record bytes) for `start <= index < end`, in index order."""
        with _reader(self.path) as conn:
            cursor = conn.execute(
                "SELECT idx, leaf_hash, record FROM audit_records "
                "WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, end if end is not None else 2**62),
            )
            for idx, leaf, data in cursor:
                yield int(idx), bytes(leaf), bytes(data)

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Pending] = [first]  # type: ignore[list-item]
                stop = False
                while len(batch) < self._batch_max:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                self._write(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        outcomes: list[tuple[asyncio.Future[AuditReceipt], AuditReceipt | BaseException]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            tail = conn.execute(
                "SELECT idx, leaf_hash FROM audit_records ORDER BY idx DESC LIMIT 1"
            ).fetchone()
            index, prev = (tail[0] + 1, bytes(tail[1]).hex()) if tail else (0, GENESIS)
            rows = []
            for record, future, _ in batch:
                try:
                    _, data, leaf = seal(record, index, prev)
                except ValueError as exc:
                    outcomes.append((future, AuditUnavailable(f"record rejected: {exc}")))
                    continue
                rows.append((index, record["decision_id"], leaf, data))
                outcomes.append((future, AuditReceipt(index=index, leaf_hash=leaf.hex())))
                index, prev = index + 1, leaf.hex()
            conn.executemany(
                "INSERT INTO audit_records (idx, decision_id, leaf_hash, record) VALUES (?,?,?,?)",
                rows,
            )
            conn.execute("COMMIT")
            self._failure = None
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._failure = str(exc)
            failure = AuditUnavailable(f"audit commit failed: {exc}")
            outcomes = [(future, failure) for _, future, _ in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_, _, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:
                continue  # the caller's loop has closed; nobody is waiting any more


def _settle(items: list[tuple[asyncio.Future[AuditReceipt], AuditReceipt | BaseException]]) -> None:
    for future, outcome in items:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class _reader:
    """A short-lived read connection used as a context manager."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
