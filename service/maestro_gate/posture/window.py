"""The slice of the audit log a report reads: decision records between two instants."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from maestro_gate.core.decision.ports import AuditEntry

DEFAULT_DAYS = 7.0


@dataclass(frozen=True)
class Window:
    """Decision records with `since <= timestamp < until`, oldest first."""

    since: datetime
    until: datetime
    records: list[dict[str, Any]] = field(default_factory=list)
    first_index: int | None = None
    last_index: int | None = None
    cut_records: int = 0
    """Records of the window left unread (the oldest) because of a bound on how many to read."""

    def describe(self) -> dict[str, Any]:
        """The window's bounds and size, for a report's header."""
        return {
            "since": stamp(self.since),
            "until": stamp(self.until),
            "decisions": len(self.records),
            "first_index": self.first_index,
            "last_index": self.last_index,
            "cut_records": self.cut_records,
        }

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The decisions on requests of one kind."""
        return [r for r in self.records if r.get("kind") == kind]


def stamp(moment: datetime) -> str:
    """An instant as the audit log writes timestamps (UTC, microseconds, `Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bounds(
    days: float = DEFAULT_DAYS, until: datetime | None = None, since: datetime | None = None
) -> tuple[datetime, datetime]:
    """`(since, until)`: the last `days` up to `until` (now), unless `since` is given."""
    end = until or datetime.now(UTC)
    return since or end - timedelta(days=days), end


def first_at_or_after(size: int, timestamp_at: Callable[[int], str], since: str) -> int:
    """The first index whose record is not older than `since`, by binary search.

    The log appends in time order; a record written a little out of order near the boundary
    is included or left out with its neighbours, never misread.
    """
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if timestamp_at(middle) < since:
            low = middle + 1
        else:
            high = middle
    return low


def collect(entries: Iterable[AuditEntry], since: datetime, until: datetime) -> Window:
    """The decision records among `entries` inside the window."""
    low, high = stamp(since), stamp(until)
    records: list[dict[str, Any]] = []
    first = last = None
    for entry in entries:
        record = orjson.loads(entry.record)
        if record.get("type") != "decision":
            continue
        timestamp = str(record.get("timestamp", ""))
        if not low <= timestamp < high:
            continue
        records.append(record)
        first = entry.idx if first is None else first
        last = entry.idx
    return Window(since, until, records, first, last)
