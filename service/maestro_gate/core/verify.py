"""Offline recomputation of the hash chain: every record's bytes, index, link and leaf hash."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from maestro_gate.core.chain import GENESIS, canonical, leaf_hash


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a chain verification: records checked and the first problem found."""

    checked: int
    head: str
    bad_index: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return self.problem is None


def verify_chain(rows: Iterable[tuple[int, bytes, bytes]]) -> ChainReport:
    """Recompute the chain over (index, stored leaf hash, record bytes) rows in stored order."""
    prev = GENESIS
    expected = 0
    for stored_index, stored_leaf, data in rows:
        problem = _check(expected, prev, stored_index, stored_leaf, data)
        if problem is not None:
            return ChainReport(checked=expected, head=prev, bad_index=expected, problem=problem)
        prev = stored_leaf.hex()
        expected += 1
    return ChainReport(checked=expected, head=prev)


def _check(expected: int, prev: str, index: int, stored_leaf: bytes, data: bytes) -> str | None:
    if index != expected:
        return (
            f"record stored at index {index} where index {expected} was expected (gap or reorder)"
        )
    try:
        record = json.loads(data)
    except ValueError:
        return "record bytes are not JSON"
    if not isinstance(record, dict):
        return "record is not a JSON object"
    try:
        if canonical(record) != data:
            return "record bytes are not in RFC 8785 canonical form"
    except ValueError as exc:
        return f"record cannot be canonicalised: {exc}"
    if record.get("index") != expected:
        return f"record says index {record.get('index')!r}, stored at {expected}"
    if record.get("prev") != prev:
        return (
            "record's prev hash does not match the previous record (altered, removed or reordered)"
        )
    if leaf_hash(data) != stored_leaf:
        return "leaf hash does not match the record bytes (record altered)"
    return None
