"""Approvals and operator controls in SQL tables, shared by the SQLite and PostgreSQL stores.

Every statement runs on one worker thread that owns the connection, so the event loop never
blocks on the database. A vote is checked and written in one transaction that locks the
approval row (`BEGIN IMMEDIATE` in SQLite, `SELECT … FOR UPDATE` in PostgreSQL); the primary key
on (approval, principal) makes a second vote by the same approver impossible even across
replicas; `consume` is one conditional UPDATE, so an approval is used at most once.
Statements are assembled from this module's constants only; every value is a bound parameter.
The store lives in the audit database, so a database failure (full, read-only, gone) is
`AuditUnavailable` (503): a failed statement changed nothing, and a failed vote was rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from maestro_gate.core.decision.approvals import Approval, Status, Vote, check_vote, now_ms, tally
from maestro_gate.core.decision.callers import Caller
from maestro_gate.core.decision.controls import Controls, Stop, StopKind
from maestro_gate.core.decision.decisions import Mode
from maestro_gate.core.errors import AuditUnavailable, NotFound

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gate_approvals (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        subject TEXT NOT NULL,
        requested_by TEXT,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        bundle_revision TEXT NOT NULL,
        bundle_digest TEXT NOT NULL,
        rules TEXT NOT NULL,
        approvers_required INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        decision_id TEXT NOT NULL,
        used_by TEXT,
        used_at_ms BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS gate_approvals_open ON gate_approvals (status, expires_at_ms)",
    """CREATE TABLE IF NOT EXISTS gate_approval_votes (
        approval_id TEXT NOT NULL REFERENCES gate_approvals (id),
        principal TEXT NOT NULL,
        verdict TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        comment TEXT,
        PRIMARY KEY (approval_id, principal)
    )""",
    "CREATE TABLE IF NOT EXISTS gate_controls (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS gate_emergency_stops (
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        by_principal TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT,
        PRIMARY KEY (kind, target)
    )""",
)
_COLUMNS = (
    "id, digest, subject, requested_by, kind, summary, bundle_revision, bundle_digest, rules, "
    "approvers_required, status, created_at_ms, expires_at_ms, decision_id, used_by, used_at_ms"
)
_FILTERS: dict[str, str] = {
    "pending": "status = 'pending' AND expires_at_ms > ?",
    "granted": "status = 'granted' AND expires_at_ms > ?",
    "expired": "status IN ('pending', 'granted') AND expires_at_ms <= ?",
    "rejected": "status = 'rejected' AND ? >= 0",
    "used": "status = 'used' AND ? >= 0",
}
T = TypeVar("T")


class SqlApprovalStore:
    """ApprovalStore and ControlStore over one DB-API connection owned by a worker thread."""

    begin = "BEGIN"
    lock = ""
    placeholder = "?"

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="approvals")
        self._conn: Any = None
        self._pending = 0

    def connect(self) -> Any:
        """A new autocommit DB-API connection (implemented per database)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect, create the tables and count pending approvals."""
        await self._run(self._open)
        await self.refresh()

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        await self._run(self._close)
        self._pool.shutdown(wait=True)

    async def refresh(self) -> int:
        """Recount pending approvals (other replicas and expiries change the count)."""
        self._pending = await self._run(self._count_pending)
        return self._pending

    def pending(self) -> int:
        """Pending, unexpired approvals as last counted."""
        return self._pending

    async def create(self, approval: Approval) -> None:
        """Store a new pending approval."""
        await self._run(self._insert, approval)
        self._pending += 1

    async def get(self, approval_id: str) -> Approval | None:
        """The approval with its votes, or None."""
        return await self._run(self._get, approval_id)

    async def vote(self, approval_id: str, caller: Caller, vote: Vote) -> Approval:
        """Check and record a vote in one locking transaction."""
        approval = await self._run(self._vote, approval_id, caller, vote)
        await self.refresh()
        return approval

    async def withdraw(self, voted: Approval, vote: Vote) -> bool:
        """Undo `vote`, which made the approval `voted`, unless the approval has moved on since.

        For a vote whose audit event could not be written: the vote must not stand unaudited.
        """
        withdrawn = await self._run(self._withdraw, voted, vote)
        await self.refresh()
        return withdrawn

    async def consume(
        self, approval_id: str, digest: str, revision: str, decision_id: str, now_ms: int
    ) -> bool:
        """Mark a granted, matching, unexpired approval used; False if another use won."""
        return await self._run(self._consume, approval_id, digest, revision, decision_id, now_ms)

    async def release(self, approval_id: str, decision_id: str) -> None:
        """Make an approval used by `decision_id` granted again (its record was not written)."""
        await self._run(
            self._execute,
            "UPDATE gate_approvals SET status = 'granted', used_by = NULL, used_at_ms = NULL "
            "WHERE id = ? AND status = 'used' AND used_by = ?",
            (approval_id, decision_id),
        )

    async def find(self, status: Status | None, limit: int, now_ms: int) -> list[Approval]:
        """Approvals, newest first, optionally with one status as seen at `now_ms`."""
        return await self._run(self._find, status, limit, now_ms)

    async def load(self, default: Controls) -> Controls:
        """The persisted mode (or `default`'s when none was saved) and the persisted stops."""
        return await self._run(self._load_controls, default)

    async def save_mode(self, mode: Mode, shadow_layers: frozenset[str]) -> None:
        """Persist the enforcement mode."""
        value = json.dumps({"mode": mode, "shadow_layers": sorted(shadow_layers)})
        await self._run(
            self._execute,
            "INSERT INTO gate_controls (name, value) VALUES ('mode', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (value,),
        )

    async def add_stop(self, stop: Stop) -> None:
        """Persist an emergency stop, replacing one for the same target."""
        await self._run(
            self._execute,
            "INSERT INTO gate_emergency_stops (kind, target, by_principal, at, reason) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, target) DO UPDATE SET "
            "by_principal = excluded.by_principal, at = excluded.at, reason = excluded.reason",
            (stop.kind, stop.id, stop.by, stop.at, stop.reason),
        )

    async def remove_stop(self, kind: StopKind, target: str) -> bool:
        """Lift an emergency stop; False when there was none."""
        count = await self._run(
            self._execute,
            "DELETE FROM gate_emergency_stops WHERE kind = ? AND target = ?",
            (kind, target),
        )
        return count > 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        conn = self._conn
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except Exception as exc:
            # DB-API connections name their driver's base error class (`Connection.Error`).
            driver_error = getattr(conn or self._conn, "Error", None)
            if driver_error is not None and isinstance(exc, driver_error):
                raise AuditUnavailable(
                    f"the approval store in the audit database failed, nothing was changed: {exc}"
                ) from exc
            raise

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _open(self) -> None:
        self._conn = self.connect()
        for statement in SCHEMA:
            self._conn.execute(statement)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _execute(self, statement: str, params: tuple[Any, ...] = ()) -> int:
        cursor = self._conn.execute(self._sql(statement), params)
        return int(cursor.rowcount)

    def _one(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(self._sql(statement), params).fetchone()

    def _all(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return list(self._conn.execute(self._sql(statement), params).fetchall())

    def _count_pending(self) -> int:
        statement = f"SELECT COUNT(*) FROM gate_approvals WHERE {_FILTERS['pending']}"  # noqa: S608
        row = self._one(statement, (now_ms(),))
        return int(row[0])

    def _insert(self, a: Approval) -> None:
        self._execute(
            f"INSERT INTO gate_approvals ({_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.id,
                a.digest,
                a.subject,
                a.requested_by,
                a.kind,
                json.dumps(a.summary, sort_keys=True),
                a.bundle_revision,
                a.bundle_digest,
                json.dumps(a.rules),
                a.approvers_required,
                a.status,
                a.created_at_ms,
                a.expires_at_ms,
                a.decision_id,
                a.used_by,
                a.used_at_ms,
            ),
        )

    def _get(self, approval_id: str, lock: str = "") -> Approval | None:
        statement = f"SELECT {_COLUMNS} FROM gate_approvals WHERE id = ?{lock}"  # noqa: S608
        row = self._one(statement, (approval_id,))
        if row is None:
            return None
        votes = self._all(
            "SELECT approval_id, principal, verdict, at_ms, comment FROM gate_approval_votes "
            "WHERE approval_id = ? ORDER BY at_ms, principal",
            (approval_id,),
        )
        return _approval(row, [_vote(v) for v in votes])

    def _vote(self, approval_id: str, caller: Caller, vote: Vote) -> Approval:
        self._conn.execute(self.begin)
        try:
            current = self._get(approval_id, self.lock)
            if current is None:
                raise NotFound(f"no approval {approval_id}")
            check_vote(current, caller, vote.at_ms)
            updated = tally(current, vote)
            self._execute(
                "INSERT INTO gate_approval_votes (approval_id, principal, verdict, at_ms, comment) "
                "VALUES (?, ?, ?, ?, ?)",
                (approval_id, vote.principal, vote.verdict, vote.at_ms, vote.comment),
            )
            self._execute(
                "UPDATE gate_approvals SET status = ? WHERE id = ?", (updated.status, approval_id)
            )
            self._conn.execute("COMMIT")
        except BaseException:
            # A full disk may have rolled the transaction back already; the first error is the one
            # to report, not "no transaction is active".
            with contextlib.suppress(self._conn.Error):
                self._conn.execute("ROLLBACK")
            raise
        return updated

    def _withdraw(self, voted: Approval, vote: Vote) -> bool:
        before = "pending"  # only a pending approval takes votes (check_vote)
        self._conn.execute(self.begin)
        try:
            current = self._get(voted.id, self.lock)
            if current is None or current.status != voted.status or current.votes != voted.votes:
                self._conn.execute("ROLLBACK")
                return False
            self._execute(
                "DELETE FROM gate_approval_votes WHERE approval_id = ? AND principal = ?",
                (voted.id, vote.principal),
            )
            self._execute("UPDATE gate_approvals SET status = ? WHERE id = ?", (before, voted.id))
            self._conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(self._conn.Error):
                self._conn.execute("ROLLBACK")
            raise
        return True

    def _consume(
        self, approval_id: str, digest: str, revision: str, decision_id: str, now: int
    ) -> bool:
        return (
            self._execute(
                "UPDATE gate_approvals SET status = 'used', used_by = ?, used_at_ms = ? "
                "WHERE id = ? AND status = 'granted' AND digest = ? AND bundle_revision = ? "
                "AND expires_at_ms > ?",
                (decision_id, now, approval_id, digest, revision, now),
            )
            == 1
        )

    def _find(self, status: Status | None, limit: int, now: int) -> list[Approval]:
        where = ""
        params: tuple[int, ...] = (limit,)
        if status is not None and status in _FILTERS:
            where, params = f"WHERE {_FILTERS[status]} ", (now, limit)
        rows = self._all(
            f"SELECT {_COLUMNS} FROM gate_approvals {where}"  # noqa: S608
            "ORDER BY created_at_ms DESC LIMIT ?",
            params,
        )
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ", ".join("?" for _ in ids)
        columns = "approval_id, principal, verdict, at_ms, comment"
        statement = f"SELECT {columns} FROM gate_approval_votes WHERE approval_id IN ({marks})"  # noqa: S608
        votes: dict[str, list[Vote]] = {}
        for v in self._all(f"{statement} ORDER BY at_ms, principal", tuple(ids)):
            votes.setdefault(v[0], []).append(_vote(v))
        return [_approval(r, votes.get(r[0], [])) for r in rows]

    def _load_controls(self, default: Controls) -> Controls:
        row = self._one("SELECT value FROM gate_controls WHERE name = 'mode'")
        stops = tuple(
            Stop(kind=r[0], id=r[1], by=r[2], at=r[3], reason=r[4])
            for r in self._all(
                "SELECT kind, target, by_principal, at, reason FROM gate_emergency_stops "
                "ORDER BY kind, target"
            )
        )
        if row is None:
            return Controls(mode=default.mode, shadow_layers=default.shadow_layers, stops=stops)
        saved = json.loads(row[0])
        return Controls(
            mode=saved["mode"], shadow_layers=frozenset(saved["shadow_layers"]), stops=stops
        )


def _approval(row: Any, votes: list[Vote]) -> Approval:
    return Approval(
        id=row[0],
        digest=row[1],
        subject=row[2],
        requested_by=row[3],
        kind=row[4],
        summary=json.loads(row[5]),
        bundle_revision=row[6],
        bundle_digest=row[7],
        rules=json.loads(row[8]),
        approvers_required=int(row[9]),
        status=row[10],
        created_at_ms=int(row[11]),
        expires_at_ms=int(row[12]),
        decision_id=row[13],
        used_by=row[14],
        used_at_ms=int(row[15]) if row[15] is not None else None,
        votes=votes,
    )


def _vote(row: Any) -> Vote:
    return Vote(principal=row[1], verdict=row[2], at_ms=int(row[3]), comment=row[4])
