"""The approval and control store contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from maestro_gate.approvals.postgres import PostgresApprovalStore
from maestro_gate.approvals.sql import SqlApprovalStore
from maestro_gate.approvals.sqlite import SqliteApprovalStore
from maestro_gate.core.decision.approvals import Approval, Vote, now_ms
from maestro_gate.core.decision.callers import APPROVER, Caller
from maestro_gate.core.decision.controls import Controls, Stop
from maestro_gate.core.errors import AlreadyVoted, ApprovalClosed, NotFound, SelfApproval

PG_DSN = os.environ.get("MAESTRO_GATE_TEST_PG_DSN")
SUBJECT = "spiffe://corp.example/agent/analyst"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlApprovalStore]:
    """A started store on a fresh SQLite file, or in a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield SqliteApprovalStore(tmp_path / "audit.db")
        return
    if not PG_DSN:
        pytest.skip("MAESTRO_GATE_TEST_PG_DSN is not set")
    schema = f"approvals_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    joiner = "&" if "?" in PG_DSN else "?"
    try:
        yield PostgresApprovalStore(f"{PG_DSN}{joiner}options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _approval(required: int = 2, ttl_ms: int = 60_000) -> Approval:
    now = now_ms()
    return Approval(
        id=str(uuid.uuid4()),
        digest="d" * 64,
        subject=SUBJECT,
        requested_by="runtime",
        kind="agent_action",
        summary={"request": {"action": "files.delete"}},
        bundle_revision="r1",
        bundle_digest="sha256:x",
        rules=["L6.irreversible_action"],
        approvers_required=required,
        status="pending",
        created_at_ms=now,
        expires_at_ms=now + ttl_ms,
        decision_id=str(uuid.uuid4()),
    )


def _approver(name: str) -> Caller:
    return Caller(principal=name, roles=frozenset({APPROVER}))


def _vote(name: str, verdict: str = "approve") -> Vote:
    return Vote(principal=name, verdict=verdict, at_ms=now_ms())  # type: ignore[arg-type]


def test_votes_grant_and_consume_happens_once(store: SqlApprovalStore) -> None:
    """Two distinct votes grant; the first consume wins, the second finds it used."""

    async def run() -> tuple[str, list[bool], int, int]:
        await store.start()
        try:
            approval = _approval()
            await store.create(approval)
            pending_before = store.pending()
            await store.vote(approval.id, _approver("alice"), _vote("alice"))
            granted = await store.vote(approval.id, _approver("bob"), _vote("bob"))
            uses = await asyncio.gather(
                *(
                    store.consume(approval.id, approval.digest, "r1", f"d{i}", now_ms())
                    for i in range(5)
                )
            )
            return granted.status, list(uses), pending_before, store.pending()
        finally:
            await store.close()

    status, uses, pending_before, pending_after = asyncio.run(run())
    assert status == "granted"
    assert sorted(uses) == [False, False, False, False, True]
    assert (pending_before, pending_after) == (1, 0)


def test_vote_rules_hold_in_the_store(store: SqlApprovalStore) -> None:
    """Self-approval, double votes, closed and unknown approvals are refused atomically."""

    async def run() -> list[type[Exception]]:
        await store.start()
        caught: list[type[Exception]] = []
        try:
            approval = _approval(required=1)
            await store.create(approval)
            attempts = [
                (approval.id, Caller("runtime", frozenset({APPROVER})), _vote("runtime")),
                (approval.id, Caller(SUBJECT, frozenset({APPROVER})), _vote(SUBJECT)),
                (approval.id, _approver("alice"), _vote("alice", "reject")),
                (approval.id, _approver("alice"), _vote("alice")),
                (approval.id, _approver("bob"), _vote("bob")),
                ("missing", _approver("bob"), _vote("bob")),
            ]
            for approval_id, caller, vote in attempts:
                try:
                    await store.vote(approval_id, caller, vote)
                except Exception as exc:
                    caught.append(type(exc))
        finally:
            await store.close()
        return caught

    assert asyncio.run(run()) == [
        SelfApproval,
        SelfApproval,
        AlreadyVoted,
        ApprovalClosed,
        NotFound,
    ]


def test_mismatched_or_expired_approvals_are_not_consumed(store: SqlApprovalStore) -> None:
    """consume checks digest, revision and expiry in the same statement."""

    async def run() -> list[bool]:
        await store.start()
        try:
            approval = _approval(required=1)
            await store.create(approval)
            await store.vote(approval.id, _approver("alice"), _vote("alice"))
            later = approval.expires_at_ms + 1
            return [
                await store.consume(approval.id, "e" * 64, "r1", "d", now_ms()),
                await store.consume(approval.id, approval.digest, "r2", "d", now_ms()),
                await store.consume(approval.id, approval.digest, "r1", "d", later),
            ]
        finally:
            await store.close()

    assert asyncio.run(run()) == [False, False, False]


def test_controls_persist_mode_and_stops(store: SqlApprovalStore) -> None:
    """The mode and the stops read back as saved; lifting removes one stop."""
    default = Controls(mode="enforce")

    async def run() -> tuple[Controls, Controls, Controls, bool]:
        await store.start()
        try:
            empty = await store.load(default)
            await store.save_mode("shadow", frozenset({"l4_deployment_infrastructure"}))
            await store.add_stop(Stop(kind="agent", id=SUBJECT, by="admin", at="t1"))
            await store.add_stop(Stop(kind="class", id="engineering", by="admin", at="t2"))
            saved = await store.load(default)
            lifted = await store.remove_stop("class", "engineering")
            after = await store.load(default)
            return empty, saved, after, lifted
        finally:
            await store.close()

    empty, saved, after, lifted = asyncio.run(run())
    assert empty == default
    assert (saved.mode, saved.shadow_layers) == (
        "shadow",
        frozenset({"l4_deployment_infrastructure"}),
    )
    assert (saved.agents, saved.classes) == (frozenset({SUBJECT}), frozenset({"engineering"}))
    assert lifted
    assert after.classes == frozenset()
