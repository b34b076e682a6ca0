"""Export as JSON Lines, and offline verification of an export file or a live store.

An export line carries OPA's decision-log fields (`decision_id`, `path`, `input`, `result`,
`timestamp`, `bundles`, `labels`) derived from the record, plus `index`, `prev`, `leaf_hash` and
`record`, the exact canonical record text the verifier recomputes everything from.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

import orjson

from maestro_gate.audit.checkpoint_keys import verify_note
from maestro_gate.audit.postgres import PostgresAuditLog
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.audit.store import TreeLog
from maestro_gate.core.decision.ports import AuditEntry
from maestro_gate.core.ledger.checkpoint import Checkpoint, NoteError, VerifierKey
from maestro_gate.core.ledger.records import OPA_FIELDS, export_line
from maestro_gate.core.ledger.verify import (
    ChainReport,
    Row,
    Segment,
    check_segment,
    join,
    verify_log,
)


def export_entries(entries: Iterable[AuditEntry], out: IO[bytes]) -> int:
    """Write one JSON line per record; return how many."""
    count = 0
    for entry in entries:
        record = orjson.loads(entry.record)
        out.write(orjson.dumps(export_line(record, entry.record, entry.leaf_hash)) + b"\n")
        count += 1
    return count


def export_rows(path: Path) -> Iterator[Row]:
    """Verifier rows from an export file; a malformed line becomes a row that fails."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                item: dict[str, Any] = orjson.loads(line)
                data = item["record"].encode()
                leaf = bytes.fromhex(item["leaf_hash"])
                claims = {name: item[name] for name in OPA_FIELDS}
                index = item["index"]
            except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError, ValueError):
                yield (number, None, b"export line is not a valid export record", None)
                continue
            yield (index, leaf, data, claims)


def _signed(
    key: VerifierKey | None, notes: list[tuple[str, str]]
) -> list[tuple[str, Checkpoint]] | ChainReport:
    checkpoints: list[tuple[str, Checkpoint]] = []
    for label, note in notes:
        if key is None:
            return ChainReport(0, "", None, f"{label} cannot be checked without --public-key")
        try:
            checkpoints.append((label, verify_note(note, key)))
        except NoteError as exc:
            return ChainReport(0, "", None, f"{label} is not valid: {exc}")
    return checkpoints


def verify(
    rows: Iterable[Row], key: VerifierKey | None, notes: list[tuple[str, str]]
) -> ChainReport:
    """Verify records and the (label, signed note) checkpoints against `key`."""
    checkpoints = _signed(key, notes)
    if isinstance(checkpoints, ChainReport):
        return checkpoints
    return verify_log(rows, checkpoints)


def verify_store(
    log: TreeLog,
    key: VerifierKey | None,
    notes: list[tuple[str, str]],
    *,
    workers: int | None = None,
    chunk: int = 100_000,
) -> ChainReport:
    """Verify a store like `verify`, checking index ranges in parallel worker processes.

    A store also holds the subtree hashes its proofs are made of: those must be the tree the
    records rebuild.
    """
    checkpoints = _signed(key, notes)
    if isinstance(checkpoints, ChainReport):
        return checkpoints
    size = log.count()
    workers = workers or os.cpu_count() or 1
    if workers == 1 or size <= chunk:
        segments = [check_segment(log.verifier_rows(0, size), 0, size)]
        return join(segments, checkpoints, log)
    bounds = [(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        segments = list(pool.map(_segment, [log.spec()] * len(bounds), *zip(*bounds, strict=True)))
    return join(segments, checkpoints, log)


def _segment(spec: tuple[str, ...], start: int, end: int) -> Segment:
    """Runs in a worker process: check records [start, end) of the store `spec` names."""
    log: TreeLog
    if spec[0] == "sqlite":
        log = SqliteAuditLog(Path(spec[1]))
    else:
        log = PostgresAuditLog(spec[1], schema=spec[2], pool_size=1)
    try:
        return check_segment(log.verifier_rows(start, end), start, end)
    finally:
        log.close()
