"""Offline verification of the audit log: every record, the chain, the Merkle root, checkpoints.

The verifier trusts nothing it is given except the checkpoints whose signatures the caller
checked. It recomputes each record's leaf from its exact bytes, requires the bytes to be RFC
8785 canonical, the record's `index` to be its position and `prev` the previous leaf; then it
rebuilds the RFC 6962 tree and requires every checkpoint to be a prefix of the log (its size no
larger, its root equal to the root of that many records). It stops at the first problem and
names the index where the log first stops matching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.core import merkle
from maestro_gate.core.chain import GENESIS, parse_canonical
from maestro_gate.core.checkpoint import Checkpoint
from maestro_gate.core.records import opa_event

Row = tuple[int, bytes | None, bytes, dict[str, Any] | None]
"""(stored index, stored leaf hash or None, record bytes, OPA fields an export line claims)."""


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a verification: records checked and the first problem found."""

    checked: int
    head: str
    bad_index: int | None = None
    problem: str | None = None
    root: bytes = merkle.EMPTY_ROOT
    checkpoints: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return self.problem is None


_BROKEN_LINK = (
    "record's prev does not match the previous record's leaf hash "
    "(this or the previous record altered, or a record removed or reordered)"
)


def _record_problem(expected: int, prev: str | None, index: int, record: Any) -> str | None:
    if index != expected:
        return (
            f"record stored at index {index} where index {expected} was expected "
            f"(records removed, inserted or renumbered)"
        )
    if type(record) is not dict:
        return "record is not a JSON object"
    if record.get("index") != expected:
        return (
            f"record says index {record.get('index')!r} but is stored at {expected} "
            f"(records swapped, moved or renumbered)"
        )
    if record.get("prev") != prev:
        return _BROKEN_LINK
    return None


@dataclass
class Segment:
    """Records `[start, end)` checked on their own: leaves, the first `prev`, the first problem.

    A log can be checked in segments (in parallel); `join` then checks the links between them.
    """

    start: int
    end: int
    leaves: list[bytes]
    first_prev: str | None
    failure: tuple[int, str] | None = None


def check_segment(rows: Iterable[Row], start: int = 0, end: int | None = None) -> Segment:
    """Check records expected at `start, start + 1, …` (up to `end`, if given) in stored order."""
    sha = hashlib.sha256
    leaves: list[bytes] = []
    append = leaves.append
    prev: str | None = None
    first_prev: str | None = None
    leaf = b""
    expected = start
    for index, stored_leaf, data, claims in rows:
        try:
            record, canonical = parse_canonical(data)
        except ValueError:
            return Segment(
                start, expected, leaves, first_prev, (expected, "record bytes are not JSON")
            )
        if not canonical:
            altered = "record bytes are not in RFC 8785 canonical form (altered)"
            return Segment(start, expected, leaves, first_prev, (expected, altered))
        if prev is None and type(record) is dict:
            claimed = record.get("prev")
            prev = first_prev = claimed if isinstance(claimed, str) else ""
        problem = _record_problem(expected, prev, index, record)
        if problem is None and claims is not None and claims != opa_event(record):
            problem = "the export line's decision-log fields differ from its record (altered)"
        if problem is None:
            leaf = sha(b"\x00" + data).digest()
            if stored_leaf is not None and leaf != stored_leaf:
                problem = "stored leaf hash does not match the record bytes (altered)"
        if problem is not None:
            return Segment(start, expected, leaves, first_prev, (expected, problem))
        append(leaf)
        prev = leaf.hex()
        expected += 1
    if end is not None and expected < end:
        missing = f"record {expected} is missing (records removed)"
        return Segment(start, expected, leaves, first_prev, (expected, missing))
    return Segment(start, expected, leaves, first_prev)


def join(
    segments: Iterable[Segment], checkpoints: Sequence[tuple[str, Checkpoint]] = ()
) -> ChainReport:
    """Link consecutive segments, rebuild the tree, and check every checkpoint is a prefix."""
    leaves: list[bytes] = []
    head = GENESIS
    for segment in segments:
        if segment.start != len(leaves):
            return _failed(len(leaves), f"record {len(leaves)} is missing (records removed)")
        first_passed = segment.failure is None or segment.failure[0] > segment.start
        if first_passed and segment.first_prev is not None and segment.first_prev != head:
            return _failed(segment.start, _BROKEN_LINK)
        if segment.failure is not None:
            return _failed(*segment.failure)
        leaves.extend(segment.leaves)
        if leaves:
            head = leaves[-1].hex()
    size = len(leaves)
    tree = merkle.levels(leaves) if leaves else [[]]
    root = merkle.root_from_levels(tree, size) if size else merkle.EMPTY_ROOT
    matched = 0
    for label, checkpoint in sorted(checkpoints, key=lambda item: item[1].size):
        problem = _checkpoint_problem(tree, size, matched, label, checkpoint)
        if problem is not None:
            bad = size if checkpoint.size > size else matched
            return ChainReport(size, head, bad, problem, root)
        matched = checkpoint.size
    return ChainReport(size, head, root=root, checkpoints=[c.size for _, c in checkpoints])


def verify_log(
    rows: Iterable[Row], checkpoints: Sequence[tuple[str, Checkpoint]] = ()
) -> ChainReport:
    """Verify records and that each (label, signature-checked checkpoint) is a prefix of them."""
    return join([check_segment(rows)], checkpoints)


def _failed(index: int, problem: str) -> ChainReport:
    return ChainReport(checked=index, head="", bad_index=index, problem=problem)


def _checkpoint_problem(
    tree: list[list[bytes]], size: int, matched: int, label: str, checkpoint: Checkpoint
) -> str | None:
    if checkpoint.size > size:
        return (
            f"the log has {size} records but {label} covers {checkpoint.size}: "
            f"records [{size}, {checkpoint.size}) were removed (log truncated)"
        )
    at = merkle.root_from_levels(tree, checkpoint.size) if checkpoint.size else merkle.EMPTY_ROOT
    if at != checkpoint.root:
        return (
            f"the first {checkpoint.size} records do not hash to the root signed in {label}: "
            f"history was rewritten; the first altered record is in [{matched}, {checkpoint.size})"
        )
    return None
