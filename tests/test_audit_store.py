"""The audit store contract, run against SQLite (a file in tmp_path) and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro_gate.audit.checkpoint_issuer import issue
from maestro_gate.audit.export import verify
from maestro_gate.audit.store import TreeLog
from maestro_gate.core.decision.ports import AuditReceipt
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.chain import GENESIS
from tests.audit_support import (
    BACKENDS,
    PG_DSN,
    body,
    drop_schema,
    make_store,
    signer,
    started,
)


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TreeLog]:
    """A started store of each backend."""
    yield from started(request.param, tmp_path)


async def _append_all(log: TreeLog, bodies: list[dict[str, object]]) -> list[AuditReceipt]:
    return list(await asyncio.gather(*(log.append(b) for b in bodies)))


def test_appends_get_consecutive_indexes_and_chain_from_genesis(log: TreeLog) -> None:
    """Sequential appends land at 0, 1, 2… and each record's prev is the previous leaf."""
    receipts = [asyncio.run(log.append(body(i))) for i in range(5)]
    assert [r.index for r in receipts] == [0, 1, 2, 3, 4]
    rows = list(log.rows())
    assert [r.leaf_hash.hex() for r in rows] == [r.leaf_hash for r in receipts]
    assert b'"prev":"' + GENESIS.encode() in rows[0].record
    assert verify(log.verifier_rows(), None, []).ok


def test_many_concurrent_tasks_make_one_gap_free_log(log: TreeLog) -> None:
    """3,000 concurrent appends get distinct indexes 0..2999 and the log verifies."""
    receipts = asyncio.run(_append_all(log, [body(i) for i in range(3000)]))
    assert sorted(r.index for r in receipts) == list(range(3000))
    stored = {row.idx: row.leaf_hash.hex() for row in log.rows()}
    assert all(stored[r.index] == r.leaf_hash for r in receipts)
    report = verify(log.verifier_rows(), None, [])
    assert report.ok, report.problem
    assert report.checked == 3000


def test_stored_subtrees_give_the_same_root_and_proofs_as_the_leaves(log: TreeLog) -> None:
    """Roots and proofs read from stored subtrees match the tree rebuilt from all leaves."""
    for batch in (1, 2, 5, 9, 30):
        asyncio.run(_append_all(log, [body(i) for i in range(batch)]))
    leaves = [row.leaf_hash for row in log.rows()]
    tree = merkle.levels(leaves)
    for size in range(1, len(leaves) + 1):
        root = merkle.root_from_levels(tree, size)
        assert log.root_at(size) == root
        for index in {0, size // 2, size - 1}:
            merkle.verify_inclusion(
                leaves[index], index, size, log.prove_inclusion(index, size), root
            )
        first = max(1, size // 3)
        proof = log.prove_consistency(first, size)
        merkle.verify_consistency(first, size, log.root_at(first), root, proof)


def test_entries_and_lookup_by_decision_id(log: TreeLog) -> None:
    """Records come back by index range and by decision id; unknown ids give None."""
    bodies = [body(i) for i in range(4)]
    asyncio.run(_append_all(log, bodies))
    assert [e.idx for e in log.rows(1, 3)] == [1, 2]
    found = log.find(bodies[2]["decision_id"])
    assert found is not None
    assert bodies[2]["decision_id"].encode() in found.record
    assert log.find("no-such-decision") is None


def test_checkpoints_are_signed_stored_and_verify(log: TreeLog, tmp_path: Path) -> None:
    """A checkpoint signs the current size and root; the latest one is kept and verifies."""
    key = signer(tmp_path)
    asyncio.run(_append_all(log, [body(i) for i in range(7)]))
    first = issue(log, key)
    asyncio.run(_append_all(log, [body(i) for i in range(4)]))
    second = issue(log, key)
    assert (first.size, second.size) == (7, 11)
    assert log.last_checkpoint() == second
    assert [c.size for c in log.checkpoints()] == [7, 11]
    notes = [("first", first.note), ("second", second.note)]
    report = verify(log.verifier_rows(), key.verifier_key, notes)
    assert report.ok, report.problem
    assert report.checkpoints == [7, 11]


def test_a_record_that_cannot_be_canonicalised_fails_alone(log: TreeLog) -> None:
    """A NaN in one body fails that append; its neighbours in the batch commit gap-free."""
    bodies = [body(0), body(1, input={"x": float("nan")}), body(2)]

    async def run() -> list[AuditReceipt | BaseException]:
        return list(await asyncio.gather(*(log.append(b) for b in bodies), return_exceptions=True))

    outcomes = asyncio.run(run())
    assert isinstance(outcomes[1], AuditUnavailable)
    good = [o for o in outcomes if isinstance(o, AuditReceipt)]
    assert sorted(o.index for o in good) == [0, 1]
    assert verify(log.verifier_rows(), None, []).ok


def test_append_without_a_running_writer_is_refused(tmp_path: Path) -> None:
    """Appending to a store that was never started raises AuditUnavailable."""
    log = make_store("sqlite", tmp_path)
    with pytest.raises(AuditUnavailable):
        asyncio.run(log.append(body(0)))


def test_reopening_continues_the_same_chain(log: TreeLog, tmp_path: Path) -> None:
    """A store closed and started again appends after its tail, not from genesis."""
    asyncio.run(_append_all(log, [body(i) for i in range(3)]))
    log.close()
    log.start()
    receipt = asyncio.run(log.append(body(3)))
    assert receipt.index == 3
    assert verify(log.verifier_rows(), None, []).ok


@pytest.mark.postgres
def test_two_postgres_replicas_extend_one_chain(tmp_path: Path) -> None:
    """Two PostgresAuditLog instances (separate pools) appending at once make one gap-free log."""
    if not PG_DSN:
        pytest.skip("MAESTRO_GATE_TEST_PG_DSN is not set (CI sets it via .ci/run)")
    first = make_store("postgres", tmp_path)
    second = make_store("postgres", tmp_path, schema=first.schema)  # type: ignore[attr-defined]
    first.start()
    second.start()
    try:

        async def both() -> list[AuditReceipt]:
            ones = [first.append(body(i)) for i in range(600)]
            twos = [second.append(body(i)) for i in range(600)]
            return list(await asyncio.gather(*ones, *twos))

        receipts = asyncio.run(both())
        assert sorted(r.index for r in receipts) == list(range(1200))
        report = verify(first.verifier_rows(), None, [])
        assert report.ok, report.problem
        assert report.checked == 1200
    finally:
        first.close()
        second.close()
        drop_schema(first)
