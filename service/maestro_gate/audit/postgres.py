"""The PostgreSQL audit log: several service instances extend one gap-free chain.

Each group commit runs in one transaction that first takes a transaction-level advisory lock
(`pg_advisory_xact_lock`, keyed by the schema) and only then reads the tail and the frontier, so
appends from every replica are serialised; `idx` is the primary key, so a fork cannot be stored.
The lock is released by COMMIT or ROLLBACK, never left behind by a crashed replica.

The write probe commits one row of `gate_probe`: a standby or a read-only database refuses it,
a server that is down or restarting fails to connect, and the commit waits for the WAL flush.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import psycopg
import psycopg_pool
from psycopg import sql
from psycopg_pool import ConnectionPool

from maestro_gate.audit import facets
from maestro_gate.audit.store import PROBE_TTL_S, Outcome, TreeLog, seal_batch, tail_of
from maestro_gate.core.decision.ports import AcceptedRevision, AuditEntry, StoredCheckpoint
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ledger import merkle

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    idx BIGINT PRIMARY KEY,
    decision_id TEXT NOT NULL,
    leaf_hash BYTEA NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_decision ON audit_records (decision_id);
CREATE TABLE IF NOT EXISTS audit_nodes (
    level SMALLINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gate_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS bundle_revisions (
    name TEXT PRIMARY KEY,
    revision TEXT NOT NULL,
    digest TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);
"""
PROBE_TIMEOUT_S = 1.0
_PROBE = (
    "INSERT INTO gate_probe (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)
_ACCEPT = (
    "INSERT INTO bundle_revisions (name, revision, digest, accepted_at) "
    "VALUES ('signed', %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
    "revision = excluded.revision, digest = excluded.digest, accepted_at = excluded.accepted_at"
)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TAIL = "SELECT idx, leaf_hash FROM audit_records ORDER BY idx DESC LIMIT 1"
_LEAVES = "SELECT idx, leaf_hash FROM audit_records WHERE idx = ANY(%s)"
_NODES = (
    "SELECT n.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) "
    "JOIN audit_nodes AS n ON n.level = k.level AND n.idx = k.idx"
)


def lock_key(schema: str) -> int:
    """The advisory lock id of the log in `schema` (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"maestro-gate/audit/{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def read_nodes(conn: psycopg.Connection[Any], nodes: list[merkle.Node]) -> dict[merkle.Node, bytes]:
    """Stored subtree hashes (level 0 from the records); KeyError names a missing one."""
    leaves = [i for level, i in nodes if level == 0]
    inner = [(level, i) for level, i in nodes if level > 0]
    found: dict[merkle.Node, bytes] = {}
    if leaves:
        for idx, leaf in conn.execute(_LEAVES, (leaves,)):
            found[(0, int(idx))] = bytes(leaf)
    if inner:
        params = ([level for level, _ in inner], [i for _, i in inner])
        for level, idx, value in conn.execute(_NODES, params):
            found[(int(level), int(idx))] = bytes(value)
    missing = [n for n in nodes if n not in found]
    if missing:
        raise KeyError(f"subtree hashes missing from the store: {missing[:4]}")
    return found


def write_facets(
    cur: psycopg.Cursor[Any], rows: list[facets.FacetRow], tags: list[tuple[str, int]]
) -> None:
    """COPY the console's search facets and tags of sealed records."""
    with cur.copy(
        "COPY audit_facets (idx, at, type, kind, subject, decision, trace_id) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    with cur.copy("COPY audit_tags (tag, idx) FROM STDIN") as copy:
        for tag in tags:
            copy.write_row(tag)


def last_at(conn: psycopg.Connection[Any], size: int) -> str | None:
    """The facet time of record `size - 1`, if it has a facet row."""
    row = conn.execute("SELECT at FROM audit_facets WHERE idx = %s", (size - 1,)).fetchone()
    return str(row[0]) if row is not None and row[0] is not None else None


def backfill_facets(conn: psycopg.Connection[Any], chunk: int = 20000) -> int:
    """Facet the records stored before the facet tables existed (inside the caller's lock)."""
    done = 0
    while True:
        rows = conn.execute(
            "SELECT idx, record FROM audit_records WHERE idx > "
            "(SELECT COALESCE(MAX(idx), -1) FROM audit_facets) ORDER BY idx LIMIT %s",
            (chunk,),
        ).fetchall()
        floor = last_at(conn, int(rows[0][0])) if rows else None
        faceted = []
        for i, data in rows:
            faceted.append(facets.facets_of(int(i), orjson.loads(data), floor))
            floor = faceted[-1][0][1]
        with conn.cursor() as cur:
            write_facets(cur, [f for f, _ in faceted], [t for _, ts in faceted for t in ts])
        done += len(rows)
        if len(rows) < chunk:
            return done


class PostgresAuditLog(TreeLog):
    """AuditStore on PostgreSQL (psycopg 3, pooled); safe to run in several replicas at once."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 4,
        batch_max: int = 2048,
        probe_ttl_s: float = PROBE_TTL_S,
    ) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        super().__init__(batch_max=batch_max, probe_ttl_s=probe_ttl_s)
        self.dsn = dsn
        self.schema = schema
        self._lock = lock_key(schema)
        self._pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self._search_path())
        conn.commit()

    def _search_path(self) -> sql.Composed:
        return sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))

    def _open(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
                conn.execute(self._search_path())
                conn.execute(SCHEMA)
                conn.execute(facets.schema("postgres"))
                backfill_facets(conn)
        self._pool = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self._pool_size,
            configure=self._configure,
            open=True,
            name=f"audit-{self.schema}",
        )

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _connection(self) -> Any:
        return self._pool_connection(None)

    def _pool_connection(self, timeout_s: float | None) -> Any:
        if self._pool is None:
            self._open()
        assert self._pool is not None
        return self._pool.connection(timeout=timeout_s)

    def _commit(self, bodies: list[dict[str, Any]]) -> list[Outcome]:
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
                size, prev = tail_of(conn.execute(_TAIL).fetchone())
                frontier = read_nodes(conn, merkle.complete_nodes(0, size))
                # Facets at or past the tail describe records no longer stored (a truncated
                # log); they are derived, so they are replaced rather than blocking the append.
                conn.execute("DELETE FROM audit_facets WHERE idx >= %s", (size,))
                conn.execute("DELETE FROM audit_tags WHERE idx >= %s", (size,))
                sealed = seal_batch(size, prev, frontier, bodies, last_at(conn, size))
                with conn.cursor() as cur:
                    with cur.copy(
                        "COPY audit_records (idx, decision_id, leaf_hash, record) FROM STDIN"
                    ) as copy:
                        for row in sealed.rows:
                            copy.write_row(row)
                    with cur.copy("COPY audit_nodes (level, idx, hash) FROM STDIN") as copy:
                        for (level, idx), value in sealed.nodes.items():
                            copy.write_row((level, idx, value))
                    write_facets(cur, sealed.facets, sealed.tags)
        except (psycopg.Error, KeyError) as exc:
            raise AuditUnavailable(f"audit commit failed: {exc}") from exc
        return sealed.outcomes

    def _probe(self) -> None:
        try:
            with self._pool_connection(PROBE_TIMEOUT_S) as conn, conn.transaction():
                conn.execute(_PROBE, (time.time_ns(),))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise AuditUnavailable(f"the audit store refused a write: {exc}") from exc

    def accepted_revision(self) -> AcceptedRevision | None:
        """The floor of signed bundle revisions."""
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT revision, digest, accepted_at FROM bundle_revisions "
                    "WHERE name = 'signed'"
                ).fetchone()
        except psycopg.Error as exc:
            raise AuditUnavailable(f"the accepted revision cannot be read: {exc}") from exc
        return AcceptedRevision(str(row[0]), str(row[1]), str(row[2])) if row else None

    def accept_revision(self, accepted: AcceptedRevision) -> None:
        """Store the floor of signed bundle revisions, committed before this returns."""
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(_ACCEPT, (accepted.revision, accepted.digest, accepted.accepted_at))
        except psycopg.Error as exc:
            raise AuditUnavailable(f"the accepted revision cannot be stored: {exc}") from exc

    def count(self) -> int:
        """Number of records."""
        with self._connection() as conn:
            row = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_records").fetchone()
        return int(row[0])

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[AuditEntry]:
        """(index, leaf hash, record bytes) for `start <= index < end`, streamed in index order."""
        with self._connection() as conn, conn.transaction(), conn.cursor(name="audit_rows") as cur:
            cur.itersize = 5000
            cur.execute(
                "SELECT idx, leaf_hash, record FROM audit_records "
                "WHERE idx >= %s AND idx < %s ORDER BY idx",
                (start, end if end is not None else 2**62),
            )
            for idx, leaf, data in cur:
                yield AuditEntry(int(idx), bytes(leaf), bytes(data))

    def spec(self) -> tuple[str, ...]:
        """("postgres", dsn, schema)."""
        return ("postgres", self.dsn, self.schema)

    def find(self, decision_id: str) -> AuditEntry | None:
        """The first record with this decision id."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT idx, leaf_hash, record FROM audit_records WHERE decision_id = %s "
                "ORDER BY idx LIMIT 1",
                (decision_id,),
            ).fetchone()
        return AuditEntry(int(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    def search(self, where: facets.LogFilter, before: int | None, limit: int) -> list[AuditEntry]:
        """The newest matching records below `before`."""
        first, last = facets.time_bounds_sql("%s")
        with self._connection() as conn:

            def lookup(sql_text: str) -> Any:
                def run(value: str) -> int | None:
                    row = conn.execute(sql_text, (value,)).fetchone()
                    return int(row[0]) if row is not None else None

                return run

            bounds = facets.time_bounds(where, lookup(first), lookup(last))
            if bounds is None:
                return []
            query = facets.SearchQuery(
                where, before, limit, mark="%s", low=bounds[0], high=bounds[1], fence=" OFFSET 0"
            )
            sql_text = query.sql()
            found = conn.execute(
                f"SELECT r.idx, r.leaf_hash, r.record FROM ({sql_text}) AS m "  # noqa: S608
                "JOIN audit_records AS r ON r.idx = m.idx ORDER BY r.idx DESC",
                query.params,
            ).fetchall()
        return [AuditEntry(int(i), bytes(leaf), bytes(data)) for i, leaf, data in found]

    def tally(self, layers: Iterable[str], since: str) -> dict[str, dict[str, int]]:
        """Denials and escalations per layer since a time."""
        first, counts = facets.tally_sql("%s")
        found: dict[str, dict[str, int]] = {layer: {} for layer in layers}
        with self._connection() as conn:
            row = conn.execute(first, (since,)).fetchone()
            if row is None:
                return found
            for layer in found:
                for decision, n in conn.execute(counts, (f"layer:{layer}", row[0], since)):
                    found[layer][str(decision)] = int(n)
        return found

    def read_nodes(self, nodes: list[merkle.Node]) -> dict[merkle.Node, bytes]:
        """Stored subtree hashes in one round trip per kind."""
        with self._connection() as conn:
            return read_nodes(conn, nodes)

    def stored_level(self, level: int) -> list[bytes]:
        """The stored subtree hashes of one level, in index order."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT hash FROM audit_nodes WHERE level = %s ORDER BY idx", (level,)
            ).fetchall()
        return [bytes(digest) for (digest,) in rows]

    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored subtree hash of level 1 and above, streamed in (level, index) order."""
        with self._connection() as conn, conn.transaction(), conn.cursor(name="audit_nodes") as cur:
            cur.itersize = 20000
            cur.execute("SELECT level, idx, hash FROM audit_nodes ORDER BY level, idx")
            for level, idx, digest in cur:
                yield int(level), int(idx), bytes(digest)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, smallest tree first."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT tree_size, root, note, issued_at FROM audit_checkpoints ORDER BY tree_size"
            ).fetchall()
        return [StoredCheckpoint(int(s), bytes(r), str(n), str(t)) for s, r, n, t in rows]

    def last_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest tree size."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT tree_size, root, note, issued_at FROM audit_checkpoints "
                "ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        return StoredCheckpoint(int(row[0]), bytes(row[1]), row[2], row[3]) if row else None

    def keep_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint unless one of that size exists."""
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO audit_checkpoints (tree_size, root, note, issued_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (tree_size) DO NOTHING",
                (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.issued_at),
            )
