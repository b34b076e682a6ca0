"""Offline verification of the audit log: every record, the chain, the Merkle root, checkpoints.

The verifier trusts nothing it is given except the checkpoints whose signatures the caller
checked. It recomputes each record's leaf from its exact bytes, requires the bytes to be RFC
8785 canonical, the record's `index` to be its position and `prev` the previous leaf; then it
rebuilds the RFC 6962 tree and requires every checkpoint to be a prefix of the log (its size no
larger, its root equal to the root of that many records). Given a store's stored subtree hashes
(what its inclusion and consistency proofs are made of), it requires them to be exactly the
rebuilt tree's. It stops at the first problem and names the index where the log first stops
matching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.chain import GENESIS, parse_canonical
from maestro_gate.core.ledger.checkpoint import Checkpoint
from maestro_gate.core.ledger.records import opa_event

Row = tuple[int, bytes | None, bytes, dict[str, Any] | None]
"""(stored index, stored leaf hash or None, record bytes, OPA fields an export line claims)."""


class StoredTree(Protocol):
    """A store's subtree hashes of level 1 and above: what its proofs are made of."""

    def stored_level(self, level: int) -> list[bytes]:
        """One level's hashes, by index."""

    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every (level, index, hash), level by level."""


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
    segments: Iterable[Segment],
    checkpoints: Sequence[tuple[str, Checkpoint]] = (),
    stored: StoredTree | None = None,
) -> ChainReport:
    """Link consecutive segments, rebuild the tree, and check every checkpoint is a prefix.

    A store's subtree hashes (`stored`) must be exactly the rebuilt tree's.
    """
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
    if stored is not None:
        failure = _stored_tree_problem(tree, stored)
        if failure is not None:
            return ChainReport(size, head, failure[0], failure[1], root)
    return ChainReport(size, head, root=root, checkpoints=[c.size for _, c in checkpoints])


def verify_log(
    rows: Iterable[Row], checkpoints: Sequence[tuple[str, Checkpoint]] = ()
) -> ChainReport:
    """Verify records and that each (label, signature-checked checkpoint) is a prefix of them."""
    return join([check_segment(rows)], checkpoints)


def _failed(index: int, problem: str) -> ChainReport:
    return ChainReport(checked=index, head="", bad_index=index, problem=problem)


def _stored_tree_problem(tree: list[list[bytes]], stored: StoredTree) -> tuple[int, str] | None:
    """Compare level by level in bulk; on a difference, walk the nodes to name the first."""
    height = len(tree)
    same = all(stored.stored_level(level) == tree[level] for level in range(1, height))
    if same and not stored.stored_level(height):
        return None
    return _nodes_problem(tree, stored.stored_nodes()) or (
        0,
        "the stored Merkle nodes changed while they were being verified",
    )


def _nodes_problem(
    tree: list[list[bytes]], nodes: Iterable[tuple[int, int, bytes]]
) -> tuple[int, str] | None:
    """The first stored subtree hash not the rebuilt tree's: (first record it covers, why)."""
    expected = sum(len(level) for level in tree[1:])
    found = 0
    for level, index, digest in nodes:
        first = index << level
        if not 1 <= level < len(tree) or index >= len(tree[level]):
            return first, (
                f"the store holds a Merkle node (level {level}, index {index}) over records "
                f"[{first}, {(index + 1) << level}) that are not in the log (records removed)"
            )
        if tree[level][index] != digest:
            return first, (
                f"the stored Merkle node (level {level}, index {index}) does not hash records "
                f"[{first}, {(index + 1) << level}) (altered): proofs served from it do not verify"
            )
        found += 1
    if found != expected:
        return 0, f"{expected - found} of the log's {expected} stored Merkle nodes are missing"
    return None


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
