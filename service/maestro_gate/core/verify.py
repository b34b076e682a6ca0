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


class _Failed(Exception):
    def __init__(self, index: int, problem: str) -> None:
        super().__init__(problem)
        self.index = index
        self.problem = problem


def _record_problem(expected: int, prev: str, index: int, record: Any) -> str | None:
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
        return (
            "record's prev does not match the previous record's leaf hash "
            "(this or the previous record altered, or a record removed or reordered)"
        )
    return None


def chain_leaves(rows: Iterable[Row]) -> tuple[list[bytes], str]:
    """Check every record in order and return the leaf hashes and head; raise _Failed."""
    sha = hashlib.sha256
    leaves: list[bytes] = []
    append = leaves.append
    prev = GENESIS
    for expected, (index, stored_leaf, data, claims) in enumerate(rows):
        try:
            record, canonical = parse_canonical(data)
        except ValueError:
            raise _Failed(expected, "record bytes are not JSON") from None
        if not canonical:
            raise _Failed(expected, "record bytes are not in RFC 8785 canonical form (altered)")
        problem = _record_problem(expected, prev, index, record)
        if problem is None and claims is not None and claims != opa_event(record):
            problem = "the export line's decision-log fields differ from its record (altered)"
        if problem is not None:
            raise _Failed(expected, problem)
        leaf = sha(b"\x00" + data).digest()
        if stored_leaf is not None and leaf != stored_leaf:
            raise _Failed(expected, "stored leaf hash does not match the record bytes (altered)")
        append(leaf)
        prev = leaf.hex()
    return leaves, prev


def verify_log(
    rows: Iterable[Row], checkpoints: Sequence[tuple[str, Checkpoint]] = ()
) -> ChainReport:
    """Verify records and that each (label, signature-checked checkpoint) is a prefix of them."""
    try:
        leaves, head = chain_leaves(rows)
    except _Failed as failed:
        return ChainReport(
            checked=failed.index, head="", bad_index=failed.index, problem=failed.problem
        )
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


def verify_chain(rows: Iterable[tuple[int, bytes, bytes]]) -> ChainReport:
    """Recompute the chain over (index, stored leaf hash, record bytes) rows in stored order."""
    return verify_log((index, leaf, data, None) for index, leaf, data in rows)
