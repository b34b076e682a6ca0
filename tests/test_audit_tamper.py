"""Tampering with a real store (SQLite file, PostgreSQL) or an export is caught and located."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.audit.checkpoint_issuer import issue
from maestro_gate.audit.checkpoint_keys import CheckpointSigner, load_signer
from maestro_gate.audit.export import (
    export_entries,
    export_rows,
    verify,
    verify_store,
)
from maestro_gate.audit.store import TreeLog
from maestro_gate.cli import main
from maestro_gate.core.ledger.merkle import leaf_hash
from maestro_gate.core.ledger.verify import ChainReport
from tests.audit_support import BACKENDS, ORIGIN, Database, body, make_store, signer, started

SIZE = 12
MIDDLE = 5


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TreeLog]:
    """A started store of each backend holding SIZE records."""
    for store in started(request.param, tmp_path):
        asyncio.run(_fill(store, SIZE))
        yield store


async def _fill(log: TreeLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await log.append(body(i))


@pytest.fixture
def key(tmp_path: Path) -> CheckpointSigner:
    """The log's checkpoint signer."""
    return signer(tmp_path)


@pytest.fixture
def saved(log: TreeLog, key: CheckpointSigner) -> str:
    """A signed checkpoint of the untouched log that an auditor saved outside the database."""
    return issue(log, key).note


def _check(log: TreeLog, key: CheckpointSigner, saved: str | None = None) -> ChainReport:
    notes = [("the saved checkpoint", saved)] if saved else []
    latest = log.last_checkpoint()
    if latest is not None:
        notes.append(("the latest stored checkpoint", latest.note))
    return verify(log.verifier_rows(), key.verifier_key, notes)


def _record(log: TreeLog, index: int) -> bytes:
    [row] = Database(log).execute("SELECT record FROM audit_records WHERE idx = ?", (index,))
    return bytes(row[0])


def test_untouched_log_verifies(log: TreeLog, key: CheckpointSigner, saved: str) -> None:
    """An untouched log verifies against its stored and its saved checkpoint."""
    report = _check(log, key, saved)
    assert report.ok, report.problem
    assert report.checked == SIZE


FIELDS = [
    "timestamp",
    "decision_id",
    "kind",
    "subject",
    "decision",
    "rules",
    "result",
    "policy",
    "mode",
    "trace_id",
    "input",
    "input_sha256",
    "index",
    "prev",
    "schema",
    "type",
    "approval",
]


@pytest.mark.parametrize("field", FIELDS)
def test_flipped_byte_in_any_field_is_caught_at_that_record(
    log: TreeLog, key: CheckpointSigner, saved: str, field: str
) -> None:
    """Changing one byte inside any field of record 5 fails verification at index 5."""
    data = bytearray(_record(log, MIDDLE))
    at = data.index(f'"{field}":'.encode()) + len(field) + 3
    data[at + 1 if data[at] in b'"[{' else at] ^= 0x01
    Database(log).execute(
        "UPDATE audit_records SET record = ? WHERE idx = ?", (bytes(data), MIDDLE)
    )
    report = _check(log, key, saved)
    assert not report.ok
    assert report.bad_index == MIDDLE
    assert any(
        words in (report.problem or "")
        for words in (
            "leaf hash does not match",
            "not in RFC 8785",
            "not JSON",
            "record says index",
            "prev does not match",
        )
    ), report.problem


def test_altered_record_with_recomputed_leaf_is_caught_by_the_next_link(
    log: TreeLog, key: CheckpointSigner, saved: str
) -> None:
    """Rewriting a record and its stored leaf hash breaks the next record's prev link."""
    data = _record(log, MIDDLE).replace(b'"mode":"enforce"', b'"mode":"shadows"')
    Database(log).execute(
        "UPDATE audit_records SET record = ?, leaf_hash = ? WHERE idx = ?",
        (data, leaf_hash(data), MIDDLE),
    )
    report = _check(log, key, saved)
    assert report.bad_index == MIDDLE + 1
    assert "prev does not match" in (report.problem or "")


def test_deleted_middle_record_is_a_gap(log: TreeLog, key: CheckpointSigner, saved: str) -> None:
    """Deleting record 5 is reported at index 5 as a missing record."""
    Database(log).execute("DELETE FROM audit_records WHERE idx = ?", (MIDDLE,))
    report = _check(log, key, saved)
    assert report.bad_index == MIDDLE
    assert "stored at index 6 where index 5 was expected" in (report.problem or "")


def test_swapped_pair_is_caught(log: TreeLog, key: CheckpointSigner, saved: str) -> None:
    """Swapping records 5 and 6 (bytes and leaf hashes) is reported at index 5."""
    db = Database(log)
    rows = db.execute(
        "SELECT idx, leaf_hash, record FROM audit_records WHERE idx IN (?, ?) ORDER BY idx",
        (MIDDLE, MIDDLE + 1),
    )
    (a, leaf_a, rec_a), (b, leaf_b, rec_b) = rows
    db.execute(
        "UPDATE audit_records SET leaf_hash = ?, record = ? WHERE idx = ?", (leaf_b, rec_b, a)
    )
    db.execute(
        "UPDATE audit_records SET leaf_hash = ?, record = ? WHERE idx = ?", (leaf_a, rec_a, b)
    )
    report = _check(log, key, saved)
    assert report.bad_index == MIDDLE
    assert "record says index 6 but is stored at 5" in (report.problem or "")


def test_renumbered_indexes_are_caught(log: TreeLog, key: CheckpointSigner, saved: str) -> None:
    """Deleting record 5 and renumbering the rest to close the gap is reported at index 5."""
    db = Database(log)
    db.execute("DELETE FROM audit_records WHERE idx = ?", (MIDDLE,))
    for idx in range(MIDDLE + 1, SIZE):
        db.execute("UPDATE audit_records SET idx = ? WHERE idx = ?", (idx - 1, idx))
    report = _check(log, key, saved)
    assert report.bad_index == MIDDLE
    assert "record says index 6 but is stored at 5" in (report.problem or "")


def test_truncated_tail_is_caught_against_a_saved_checkpoint(
    log: TreeLog, key: CheckpointSigner, saved: str
) -> None:
    """Dropping the last records and every stored checkpoint is caught by the saved one."""
    db = Database(log)
    db.execute("DELETE FROM audit_records WHERE idx >= ?", (9,))
    db.execute("DELETE FROM audit_checkpoints")
    assert verify(log.verifier_rows(), key.verifier_key, []).ok
    report = _check(log, key, saved)
    assert report.bad_index == 9
    assert "log has 9 records but the saved checkpoint covers 12" in (report.problem or "")


def _rewrite(log: TreeLog, change: dict[str, Any]) -> None:
    """The attacker's rewrite: alter record 3, then re-append everything with fresh hashes."""
    db = Database(log)
    bodies = [
        json.loads(row[0]) for row in db.execute("SELECT record FROM audit_records ORDER BY idx")
    ]
    bodies[3].update(change)
    for statement in ("DELETE FROM audit_records", "DELETE FROM audit_nodes"):
        db.execute(statement)
    for b in bodies:
        del b["index"], b["prev"]

    async def again() -> None:
        for b in bodies:
            await log.append(b)

    asyncio.run(again())


def test_rewritten_log_with_recomputed_hashes_is_caught_by_the_saved_checkpoint(
    log: TreeLog, key: CheckpointSigner, saved: str
) -> None:
    """A whole log rewritten with valid chain and tree fails against the saved signed checkpoint."""
    _rewrite(log, {"decision": "allow"})
    Database(log).execute("DELETE FROM audit_checkpoints")
    assert verify(log.verifier_rows(), key.verifier_key, []).ok  # self-consistent on its own
    report = _check(log, key, saved)
    assert not report.ok
    assert "do not hash to the root signed in the saved checkpoint" in (report.problem or "")
    assert report.bad_index == 0


def test_rewritten_log_cannot_carry_a_checkpoint_by_another_key(
    log: TreeLog, key: CheckpointSigner, tmp_path: Path
) -> None:
    """A rewrite re-signed with the attacker's own key is refused: no signature by the real key."""
    _rewrite(log, {"decision": "allow"})
    Database(log).execute("DELETE FROM audit_checkpoints")
    forger, _ = load_signer(tmp_path / "forger.key", ORIGIN, create=True)
    forged = issue(log, forger)
    report = verify(log.verifier_rows(), key.verifier_key, [("the stored checkpoint", forged.note)])
    assert not report.ok
    assert "no signature by key" in (report.problem or "")


def test_tampered_export_line_is_caught(
    log: TreeLog, key: CheckpointSigner, saved: str, tmp_path: Path
) -> None:
    """An export whose OPA fields or record text were edited fails at that line's index."""
    out = tmp_path / "export.jsonl"
    with out.open("wb") as handle:
        export_entries(log.rows(), handle)
    lines = out.read_text().splitlines()
    assert verify(export_rows(out), key.verifier_key, [("saved", saved)]).ok
    edited = json.loads(lines[MIDDLE])
    edited["result"]["decision"] = "allow" if edited["result"]["decision"] == "deny" else "deny"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:MIDDLE], json.dumps(edited), *lines[MIDDLE + 1 :]]) + "\n")
    report = verify(export_rows(bad), key.verifier_key, [("saved", saved)])
    assert report.bad_index == MIDDLE
    assert "decision-log fields differ" in (report.problem or "")


def test_cli_verify_names_the_first_bad_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maestro-gate audit verify` exits 1 naming the first bad index, 0 on an intact export."""
    store = make_store("sqlite", tmp_path)
    store.start()
    asyncio.run(_fill(store, SIZE))
    store.close()
    monkeypatch.setenv("MAESTRO_GATE_CHECKPOINT_KEY_FILE", str(tmp_path / "cli.key"))
    monkeypatch.setenv("MAESTRO_GATE_CHECKPOINT_ORIGIN", ORIGIN)
    dsn = f"sqlite:///{store.path}"  # type: ignore[attr-defined]
    assert main(["audit", "public-key", "--vkey"]) == 0
    (tmp_path / "vkey").write_text(capsys.readouterr().out)
    assert main(["audit", "checkpoint", "--dsn", dsn, "--out", str(tmp_path / "cp")]) == 0
    assert main(["audit", "export", "--dsn", dsn, "--out", str(tmp_path / "log.jsonl")]) == 0
    args = ["--public-key", str(tmp_path / "vkey"), "--checkpoint", str(tmp_path / "cp")]
    capsys.readouterr()
    assert main(["audit", "verify", "--export", str(tmp_path / "log.jsonl"), *args]) == 0
    assert main(["audit", "verify", "--dsn", dsn, *args]) == 0
    assert "12 records verified" in capsys.readouterr().out
    Database(store).execute("DELETE FROM audit_records WHERE idx = 7")
    assert main(["audit", "verify", "--dsn", dsn, *args]) == 1
    assert "FAIL at index 7" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tamper", "index", "words"),
    [
        (None, None, ""),
        ("DELETE FROM audit_records WHERE idx = 4", 4, "index 4 was expected"),
        ("DELETE FROM audit_records WHERE idx = 6", 6, "stored at index 7 where index 6"),
    ],
)
def test_parallel_verification_agrees_across_segment_boundaries(
    log: TreeLog,
    key: CheckpointSigner,
    saved: str,
    tamper: str | None,
    index: int | None,
    words: str,
) -> None:
    """Verifying in 4-record segments on 2 processes finds what the sequential pass finds."""
    if tamper is not None:
        Database(log).execute(tamper)
    report = verify_store(
        log, key.verifier_key, [("the saved checkpoint", saved)], workers=2, chunk=4
    )
    sequential = verify(log.verifier_rows(), key.verifier_key, [("the saved checkpoint", saved)])
    assert report.bad_index == sequential.bad_index == index
    assert words in (report.problem or "")
    assert report.ok is (tamper is None)


@pytest.mark.parametrize(
    ("tamper", "index", "words"),
    [
        (
            "UPDATE audit_nodes SET hash = ? WHERE level = 2 AND idx = 1",
            4,
            "stored Merkle node (level 2, index 1) does not hash records [4, 8)",
        ),
        ("DELETE FROM audit_nodes WHERE level = 1 AND idx = 5", 0, "1 of the log's 10 stored"),
        (
            "INSERT INTO audit_nodes (level, idx, hash) VALUES (1, 6, ?)",
            12,
            "level 1, index 6) over records [12, 14) that are not in the log",
        ),
    ],
    ids=["altered", "deleted", "beyond-the-log"],
)
def test_stored_merkle_nodes_that_are_not_the_records_tree_are_caught(
    log: TreeLog, key: CheckpointSigner, saved: str, tamper: str, index: int, words: str
) -> None:
    """The subtree hashes proofs are served from must be the tree the records rebuild."""
    params = (b"\x07" * 32,) if "?" in tamper else ()
    assert verify_store(log, key.verifier_key, [("the saved checkpoint", saved)]).ok
    Database(log).execute(tamper, params)
    for workers in (1, 2):
        report = verify_store(
            log, key.verifier_key, [("the saved checkpoint", saved)], workers=workers, chunk=4
        )
        assert not report.ok
        assert report.bad_index == index
        assert words in (report.problem or ""), report.problem
    records_only = verify(log.verifier_rows(), key.verifier_key, [("the saved checkpoint", saved)])
    assert records_only.ok  # the records themselves are intact: only the proof cache is not


def test_cli_verify_fails_on_an_altered_merkle_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maestro-gate audit verify --dsn` exits 1 naming the node and the records it covers."""
    store = make_store("sqlite", tmp_path)
    store.start()
    asyncio.run(_fill(store, SIZE))
    store.close()
    dsn = f"sqlite:///{store.path}"  # type: ignore[attr-defined]
    assert main(["audit", "verify", "--dsn", dsn]) == 0
    Database(store).execute("UPDATE audit_nodes SET hash = ? WHERE level = 3", (b"\x00" * 32,))
    capsys.readouterr()
    assert main(["audit", "verify", "--dsn", dsn]) == 1
    out = capsys.readouterr().out
    assert "FAIL at index 0" in out
    assert "stored Merkle node (level 3, index 0)" in out
