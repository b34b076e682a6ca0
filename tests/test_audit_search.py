"""The console's search of the audit log: facets and tags, combined filters, keyset pages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from maestro_gate.audit.facets import LogFilter
from maestro_gate.audit.store import TreeLog
from tests.audit_support import BACKENDS, Database, body, make_store, started


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TreeLog]:
    """A started store of each backend holding 30 records (every third a shell.exec deny)."""
    for store in started(request.param, tmp_path):
        asyncio.run(_append_all(store, [_varied(n) for n in range(30)]))
        yield store


def _varied(n: int) -> dict[str, Any]:
    record = body(n, subject=f"agent-{n % 2}")
    if n == 7:
        record["type"] = "approval_approved"
        record["kind"] = None
    return record


async def _append_all(log: TreeLog, bodies: list[dict[str, Any]]) -> None:
    for one in bodies:
        await log.append(one)


def indexes(
    log: TreeLog, where: LogFilter, before: int | None = None, limit: int = 100
) -> list[int]:
    """The indexes of a page of matches."""
    return [entry.idx for entry in log.search(where, before, limit)]


def test_no_filter_pages_newest_first_by_keyset(log: TreeLog) -> None:
    """Pages of 10 walk 29..0 with `before` set to the last index of the previous page."""
    first = indexes(log, LogFilter(), limit=10)
    second = indexes(log, LogFilter(), before=first[-1], limit=10)
    third = indexes(log, LogFilter(), before=second[-1], limit=10)
    assert first + second + third == list(range(29, -1, -1))
    assert indexes(log, LogFilter(), before=0) == []


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (LogFilter(decision="deny"), [n for n in range(30) if n % 3 == 0]),
        (LogFilter(agent="agent-1"), [n for n in range(30) if n % 2 == 1]),
        (LogFilter(agent="agent-1", decision="deny"), [n for n in range(30) if n % 6 == 3]),
        (LogFilter(rule="L3.tool_not_allowlisted"), [n for n in range(30) if n % 3 == 0]),
        (LogFilter(threat="T2", agent="agent-0"), [n for n in range(30) if n % 6 == 0]),
        (
            LogFilter(layer="l3_agent_frameworks", threat="T2", rule="L3.tool_not_allowlisted"),
            [n for n in range(30) if n % 3 == 0],
        ),
        (LogFilter(trace_id="trace-12"), [12]),
        (LogFilter(type="approval_approved"), [7]),
        (
            LogFilter(kind="agent_action", agent="agent-1", decision="allow"),
            [n for n in range(30) if n % 2 == 1 and n % 3 != 0 and n != 7],
        ),
        (LogFilter(threat="T999"), []),
    ],
)
def test_filters_combine_with_and(log: TreeLog, where: LogFilter, expected: list[int]) -> None:
    """Each filter, and several together, select exactly the records that match all of them."""
    assert indexes(log, where) == sorted(expected, reverse=True)


def test_time_range_is_since_inclusive_until_exclusive(log: TreeLog) -> None:
    """`since <= timestamp < until`, compared as the records' ISO 8601 text."""
    stamps = {
        e.idx: orjson.loads(e.record)["timestamp"] for e in log.search(LogFilter(), None, 100)
    }
    since, until = stamps[10], stamps[20]
    found = indexes(log, LogFilter(since=since, until=until))
    assert found == sorted((i for i, t in stamps.items() if since <= t < until), reverse=True)
    assert 10 in found
    assert 20 not in found


def test_found_records_are_the_stored_bytes(log: TreeLog) -> None:
    """A search returns the canonical record and leaf hash as stored, not a re-encoding."""
    [entry] = log.search(LogFilter(trace_id="trace-5"), None, 10)
    [row] = Database(log).execute("SELECT leaf_hash, record FROM audit_records WHERE idx = ?", (5,))
    assert (entry.leaf_hash, entry.record) == (bytes(row[0]), bytes(row[1]))


@pytest.mark.parametrize("kind", BACKENDS)
def test_records_stored_before_the_facets_are_faceted_when_opened(
    kind: str, tmp_path: Path
) -> None:
    """A log written without facet rows (an older version) gets them when it is next opened."""
    for store in started(kind, tmp_path):
        asyncio.run(_append_all(store, [_varied(n) for n in range(12)]))
        Database(store).execute("DELETE FROM audit_tags WHERE idx >= 4")
        Database(store).execute("DELETE FROM audit_facets WHERE idx >= 4")
        store.close()
        reopened = make_store(kind, tmp_path, getattr(store, "schema", None))
        reopened.start()
        try:
            assert indexes(reopened, LogFilter(decision="deny")) == [9, 6, 3, 0]
            assert indexes(reopened, LogFilter(rule="L3.tool_not_allowlisted")) == [9, 6, 3, 0]
        finally:
            reopened.close()


def test_tally_counts_denials_per_layer_since_a_time(log: TreeLog) -> None:
    """Denials and escalations per layer tag, from the first record at or after `since`."""
    layers = ["l3_agent_frameworks", "l6_security_compliance"]
    assert log.tally(layers, "") == {
        "l3_agent_frameworks": {"deny": 10},
        "l6_security_compliance": {},
    }
    stamp = orjson.loads(log.search(LogFilter(trace_id="trace-15"), None, 1)[0].record)["timestamp"]
    assert log.tally(layers, stamp)["l3_agent_frameworks"] == {"deny": 5}
    assert log.tally(layers, "2999-01-01") == {layer: {} for layer in layers}


def test_facet_times_never_decrease_so_a_range_is_an_index_interval(log: TreeLog) -> None:
    """A record timestamped before its predecessor is found in the range of the later time."""
    late, early = body(100), body(101)
    late["timestamp"], early["timestamp"] = "2026-06-01T00:00:02+00:00", "2026-06-01T00:00:01+00:00"
    asyncio.run(_append_all(log, [late, early]))
    found = indexes(log, LogFilter(since="2026-06-01T00:00:02+00:00"))
    assert found == [31, 30]
    assert (
        indexes(
            log, LogFilter(since="2026-06-01T00:00:00+00:00", until="2026-06-01T00:00:02+00:00")
        )
        == []
    )
    assert indexes(log, LogFilter(since="2026-06-01T00:00:02+00:00"), before=31) == [30]
