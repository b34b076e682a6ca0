"""The SQLite audit log: WAL, one writer thread, group commit, durable before acknowledging.

Each batch runs in one `BEGIN IMMEDIATE` transaction, which takes the file's write lock before
the tail is read, so several worker processes sharing one file extend one chain; `idx` is the
primary key, so a fork cannot be stored. `audit_nodes` holds the hash of every complete subtree
of level 1 and above (level 0 is `audit_records.leaf_hash`), written in the same transaction.

The write probe first asks the file system: a read-only mount or less than `PROBE_FREE_BYTES`
free fails it, because a one-row commit can still fit in the WAL's reused pages on a disk where
every batch of records fails. Then it commits one row on a fresh connection (the path, the lock
and the fsync), which costs about 0.1 ms on tmpfs and one fsync on a disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from maestro_gate.audit import facets
from maestro_gate.audit.store import PROBE_TTL_S, Outcome, TreeLog, seal_batch, tail_of
from maestro_gate.core.decision.ports import AcceptedRevision, AuditEntry, StoredCheckpoint
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.verify import Row

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    idx INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL,
    leaf_hash BLOB NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_decision ON audit_records (decision_id);
CREATE TABLE IF NOT EXISTS audit_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gate_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundle_revisions (
    name TEXT PRIMARY KEY,
    revision TEXT NOT NULL,
    digest TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);
"""
PROBE_FREE_BYTES = 1024 * 1024
PROBE_TIMEOUT_S = 1.0
_PROBE = (
    "INSERT INTO gate_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)
_ACCEPTED = "SELECT revision, digest, accepted_at FROM bundle_revisions WHERE name = 'signed'"
_ACCEPT = (
    "INSERT INTO bundle_revisions (name, revision, digest, accepted_at) VALUES ('signed', ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, digest = excluded.digest, "
    "accepted_at = excluded.accepted_at"
)

_LEAVES = "SELECT idx, leaf_hash FROM audit_records WHERE idx IN (SELECT value FROM json_each(?))"
_NODES = (
    "SELECT n.level, n.idx, n.hash FROM json_each(?) AS k JOIN audit_nodes AS n "
    "ON n.level = json_extract(k.value, '$[0]') AND n.idx = json_extract(k.value, '$[1]')"
)
_TAIL = "SELECT idx, leaf_hash FROM audit_records ORDER BY idx DESC LIMIT 1"


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with WAL, the given durability, a generous busy timeout and the schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.executescript(SCHEMA + facets.schema("sqlite"))
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def read_nodes(conn: sqlite3.Connection, nodes: list[merkle.Node]) -> dict[merkle.Node, bytes]:
    """Stored subtree hashes (level 0 from the records); KeyError names a missing one."""
    leaves = [i for level, i in nodes if level == 0]
    inner = [[level, i] for level, i in nodes if level > 0]
    found: dict[merkle.Node, bytes] = {}
    if leaves:
        for idx, leaf in conn.execute(_LEAVES, (json.dumps(leaves),)):
            found[(0, int(idx))] = bytes(leaf)
    if inner:
        for level, idx, value in conn.execute(_NODES, (json.dumps(inner),)):
            found[(int(level), int(idx))] = bytes(value)
    missing = [n for n in nodes if n not in found]
    if missing:
        raise KeyError(f"subtree hashes missing from the store: {missing[:4]}")
    return found


def write_batch(conn: sqlite3.Connection, bodies: list[dict[str, Any]]) -> list[Outcome]:
    """Seal and insert `bodies` after the tail inside the caller's write transaction."""
    size, prev = tail_of(conn.execute(_TAIL).fetchone())
    frontier = read_nodes(conn, merkle.complete_nodes(0, size))
    # Facets at or past the tail describe records no longer stored (a truncated or restored
    # log); they are derived, so they are replaced rather than allowed to block the append.
    conn.execute("DELETE FROM audit_facets WHERE idx >= ?", (size,))
    conn.execute("DELETE FROM audit_tags WHERE idx >= ?", (size,))
    sealed = seal_batch(size, prev, frontier, bodies, last_at(conn, size))
    conn.executemany(
        "INSERT INTO audit_records (idx, decision_id, leaf_hash, record) VALUES (?,?,?,?)",
        sealed.rows,
    )
    conn.executemany(
        "INSERT INTO audit_nodes (level, idx, hash) VALUES (?,?,?)",
        [(level, idx, value) for (level, idx), value in sealed.nodes.items()],
    )
    write_facets(conn, sealed.facets, sealed.tags)
    return sealed.outcomes


def last_at(conn: sqlite3.Connection, size: int) -> str | None:
    """The facet time of record `size - 1`, if it has a facet row."""
    row = conn.execute("SELECT at FROM audit_facets WHERE idx = ?", (size - 1,)).fetchone()
    return str(row[0]) if row is not None and row[0] is not None else None


def write_facets(
    conn: sqlite3.Connection, rows: list[facets.FacetRow], tags: list[tuple[str, int]]
) -> None:
    """Insert the console's search facets and tags of sealed records."""
    conn.executemany("INSERT INTO audit_facets VALUES (?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO audit_tags (tag, idx) VALUES (?,?)", tags)


def backfill_facets(conn: sqlite3.Connection, chunk: int = 20000) -> int:
    """Facet the records stored before the facet tables existed; return how many."""
    done = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT idx, record FROM audit_records WHERE idx > "
                "(SELECT COALESCE(MAX(idx), -1) FROM audit_facets) ORDER BY idx LIMIT ?",
                (chunk,),
            ).fetchall()
            floor = last_at(conn, int(rows[0][0])) if rows else None
            faceted = []
            for i, data in rows:
                faceted.append(facets.facets_of(int(i), orjson.loads(data), floor))
                floor = faceted[-1][0][1]
            write_facets(conn, [f for f, _ in faceted], [t for _, ts in faceted for t in ts])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += len(rows)
        if len(rows) < chunk:
            return done


def _scalar(row: Any) -> int | None:
    return int(row[0]) if row is not None else None


class SqliteAuditLog(TreeLog):
    """AuditStore on a SQLite file; `append` returns once the record's transaction committed."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        batch_max: int = 2048,
        probe_ttl_s: float = PROBE_TTL_S,
    ) -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ValueError(f"unsupported synchronous mode {synchronous!r}")
        super().__init__(batch_max=batch_max, probe_ttl_s=probe_ttl_s)
        self.path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        self._check_file_system()
        self._conn = connect(self.path, synchronous=self._synchronous)
        backfill_facets(self._conn)

    def _check_file_system(self) -> None:
        """Raise AuditUnavailable for a read-only mount or one with too little space left."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fs = os.statvfs(self.path.parent)
        if fs.f_flag & os.ST_RDONLY:
            raise AuditUnavailable(f"{self.path.parent} is on a read-only file system")
        free = fs.f_bavail * fs.f_frsize
        if free < PROBE_FREE_BYTES:
            raise AuditUnavailable(f"{self.path.parent} has {free} bytes free")

    def _shutdown(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _commit(self, bodies: list[dict[str, Any]]) -> list[Outcome]:
        conn = self._conn
        if conn is None:
            raise AuditUnavailable("the audit log is not open")
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = write_batch(conn, bodies)
            conn.execute("COMMIT")
        except (sqlite3.Error, KeyError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise AuditUnavailable(f"audit commit failed: {exc}") from exc
        return outcomes

    def _probe(self) -> None:
        self._check_file_system()
        conn = sqlite3.connect(self.path, timeout=PROBE_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_PROBE, (time.time_ns(),))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"the audit store refused a write: {exc}") from exc
        finally:
            conn.close()

    def accepted_revision(self) -> AcceptedRevision | None:
        """The floor of signed bundle revisions, read on a fresh connection."""
        try:
            conn = self._read()
            try:
                row = conn.execute(_ACCEPTED).fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"the accepted revision cannot be read: {exc}") from exc
        return AcceptedRevision(str(row[0]), str(row[1]), str(row[2])) if row else None

    def accept_revision(self, accepted: AcceptedRevision) -> None:
        """Store the floor of signed bundle revisions, committed before this returns."""
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(_ACCEPT, (accepted.revision, accepted.digest, accepted.accepted_at))
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"the accepted revision cannot be stored: {exc}") from exc
        finally:
            conn.close()

    def _read(self) -> sqlite3.Connection:
        if not self.path.is_file():
            connect(self.path, synchronous=self._synchronous).close()
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60.0)

    def count(self) -> int:
        """Number of records, read on a fresh connection."""
        conn = self._read()
        try:
            row = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_records").fetchone()
        finally:
            conn.close()
        return int(row[0])

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[AuditEntry]:
        """(index, leaf hash, record bytes) for `start <= index < end`, in index order."""
        conn = self._read()
        try:
            cursor = conn.execute(
                "SELECT idx, leaf_hash, record FROM audit_records "
                "WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, end if end is not None else 2**62),
            )
            for idx, leaf, data in cursor:
                yield AuditEntry(int(idx), bytes(leaf), bytes(data))
        finally:
            conn.close()

    def verifier_rows(self, start: int = 0, end: int | None = None) -> Iterator[Row]:
        """Rows for `core.verify`, straight from the cursor (no per-row Python work)."""
        conn = self._read()
        try:
            yield from conn.execute(
                "SELECT idx, leaf_hash, record, NULL FROM audit_records "
                "WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, end if end is not None else 2**62),
            )
        finally:
            conn.close()

    def spec(self) -> tuple[str, ...]:
        """("sqlite", path)."""
        return ("sqlite", str(self.path))

    def find(self, decision_id: str) -> AuditEntry | None:
        """The first record with this decision id."""
        conn = self._read()
        try:
            row = conn.execute(
                "SELECT idx, leaf_hash, record FROM audit_records WHERE decision_id = ? "
                "ORDER BY idx LIMIT 1",
                (decision_id,),
            ).fetchone()
        finally:
            conn.close()
        return AuditEntry(int(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    def search(self, where: facets.LogFilter, before: int | None, limit: int) -> list[AuditEntry]:
        """The newest matching records below `before`, on a fresh read connection."""
        first, last = facets.time_bounds_sql("?")
        conn = self._read()
        try:

            def lookup(sql: str) -> Any:
                return lambda value: _scalar(conn.execute(sql, (value,)).fetchone())

            bounds = facets.time_bounds(where, lookup(first), lookup(last))
            if bounds is None:
                return []
            query = facets.SearchQuery(where, before, limit, low=bounds[0], high=bounds[1])
            sql = query.sql()
            found = conn.execute(
                f"SELECT r.idx, r.leaf_hash, r.record FROM ({sql}) AS m "  # noqa: S608 (bound values)
                "JOIN audit_records AS r ON r.idx = m.idx ORDER BY r.idx DESC",
                query.params,
            ).fetchall()
        finally:
            conn.close()
        return [AuditEntry(int(i), bytes(leaf), bytes(data)) for i, leaf, data in found]

    def tally(self, layers: Iterable[str], since: str) -> dict[str, dict[str, int]]:
        """Denials and escalations per layer since a time, on a fresh read connection."""
        first, counts = facets.tally_sql("?")
        conn = self._read()
        try:
            row = conn.execute(first, (since,)).fetchone()
            found: dict[str, dict[str, int]] = {layer: {} for layer in layers}
            if row is None:
                return found
            for layer in found:
                for decision, n in conn.execute(counts, (f"layer:{layer}", row[0], since)):
                    found[layer][str(decision)] = int(n)
            return found
        finally:
            conn.close()

    def read_nodes(self, nodes: list[merkle.Node]) -> dict[merkle.Node, bytes]:
        """Stored subtree hashes, on a fresh read connection."""
        conn = self._read()
        try:
            return read_nodes(conn, nodes)
        finally:
            conn.close()

    def stored_level(self, level: int) -> list[bytes]:
        """The stored subtree hashes of one level, in index order."""
        conn = self._read()
        try:
            cursor = conn.execute(
                "SELECT hash FROM audit_nodes WHERE level = ? ORDER BY idx", (level,)
            )
            return [digest for (digest,) in cursor]
        finally:
            conn.close()

    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored subtree hash of level 1 and above, in (level, index) order."""
        conn = self._read()
        try:
            yield from conn.execute("SELECT level, idx, hash FROM audit_nodes ORDER BY level, idx")
        finally:
            conn.close()

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, smallest tree first."""
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT tree_size, root, note, issued_at FROM audit_checkpoints ORDER BY tree_size"
            ).fetchall()
        finally:
            conn.close()
        return [StoredCheckpoint(int(s), bytes(r), str(n), str(t)) for s, r, n, t in rows]

    def last_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest tree size."""
        conn = self._read()
        try:
            row = conn.execute(
                "SELECT tree_size, root, note, issued_at FROM audit_checkpoints "
                "ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        return StoredCheckpoint(int(row[0]), bytes(row[1]), row[2], row[3]) if row else None

    def keep_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint unless one of that size exists."""
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            conn.execute(
                "INSERT OR IGNORE INTO audit_checkpoints (tree_size, root, note, issued_at) "
                "VALUES (?,?,?,?)",
                (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.issued_at),
            )
        finally:
            conn.close()
