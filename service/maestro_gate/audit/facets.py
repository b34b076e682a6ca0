"""What the console searches the log by: one facet row and a set of tags per record.

A record's facets (`audit_facets`) are its time, type, request kind, subject, decision and
trace id; its tags (`audit_tags`) are `rule:<id>`, `layer:<id>` and `threat:<id>`, one row
each, for the reasons it carries and the layers that did not allow, and `request:<key>` for a
decision whose request carried a `request_id` (its retry key, `core/decision/retries.py`: a retried
decide finds the decision it already got). Both tables are written in
the transaction that writes the record, and indexed so that a page of the newest matches is a
backward walk of one index (`SearchQuery`): keyset paging on `idx`, never an OFFSET.

A facet's `at` is the record's timestamp, or the previous record's `at` when that is later
(two decisions timestamped a moment apart can be sealed in the other order), so `at` never
decreases along the log: a time range is one interval of indexes, found at both ends through
the `at` index (`TIME_BOUNDS`), and a page in a range is a walk inside it, however far back.

The facets are a derived index: the canonical record stays the only thing the chain and the
tree cover, and a verifier never reads these tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.core.decision.retries import key_of_record

FacetRow = tuple[int, str | None, str | None, str | None, str | None, str | None, str | None]
"""(idx, timestamp, type, kind, subject, decision, trace_id)."""

TAG_KINDS = ("rule", "layer", "threat", "request")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_facets (
    idx {integer} PRIMARY KEY,
    at TEXT,
    type TEXT,
    kind TEXT,
    subject TEXT,
    decision TEXT,
    trace_id TEXT
);
CREATE INDEX IF NOT EXISTS audit_facets_at ON audit_facets (at, idx);
CREATE INDEX IF NOT EXISTS audit_facets_type ON audit_facets (type, idx);
CREATE INDEX IF NOT EXISTS audit_facets_kind ON audit_facets (kind, idx);
CREATE INDEX IF NOT EXISTS audit_facets_subject ON audit_facets (subject, idx);
CREATE INDEX IF NOT EXISTS audit_facets_decision ON audit_facets (decision, idx);
CREATE INDEX IF NOT EXISTS audit_facets_trace ON audit_facets (trace_id, idx);
CREATE TABLE IF NOT EXISTS audit_tags (
    tag TEXT NOT NULL,
    idx {integer} NOT NULL,
    PRIMARY KEY (tag, idx)
){clustered};
"""


def schema(backend: str) -> str:
    """The facet tables and their indexes for `sqlite` (rowid and clustered keys) or `postgres`."""
    if backend == "sqlite":
        return _SCHEMA.format(integer="INTEGER", clustered=" WITHOUT ROWID")
    return _SCHEMA.format(integer="BIGINT", clustered="")


_COLUMNS = {
    "type": "type",
    "kind": "kind",
    "agent": "subject",
    "decision": "decision",
    "trace_id": "trace_id",
}


def facets_of(
    index: int, body: dict[str, Any], floor: str | None = None
) -> tuple[FacetRow, list[tuple[str, int]]]:
    """The facet row and the (tag, idx) rows of the record body sealed at `index`.

    `floor` is the previous record's `at`: the row's `at` is never earlier.
    """
    result = body.get("result")
    stamp = _text(body.get("timestamp"))
    row: FacetRow = (
        index,
        max(stamp, floor) if stamp is not None and floor is not None else stamp or floor,
        _text(body.get("type")),
        _text(body.get("kind")),
        _text(body.get("subject")),
        _text(body.get("decision")),
        _text(body.get("trace_id")),
    )
    tags = tags_of(result) if isinstance(result, dict) else set()
    retry = key_of_record(body)
    if (
        retry is not None
    ):  # a retried decide finds the decision it already got (core/decision/retries.py)
        tags.add(f"request:{retry}")
    return row, [(tag, index) for tag in sorted(tags)]


def tags_of(result: dict[str, Any]) -> set[str]:
    """`rule:`, `layer:` and `threat:` tags of a decision result."""
    tags: set[str] = set()
    for reason in _list(result.get("reasons")):
        if not isinstance(reason, dict):
            continue
        if isinstance(reason.get("rule"), str):
            tags.add(f"rule:{reason['rule']}")
        if isinstance(reason.get("layer"), str):
            tags.add(f"layer:{reason['layer']}")
        tags.update(f"threat:{t}" for t in _list(reason.get("threats")) if isinstance(t, str))
    layers = result.get("layers")
    if isinstance(layers, dict):
        tags.update(f"layer:{name}" for name, verdict in layers.items() if verdict != "allow")
    return tags


@dataclass(frozen=True)
class LogFilter:
    """Console filters, combined with AND; None or empty means "any"."""

    since: str | None = None
    until: str | None = None
    type: str | None = None
    kind: str | None = None
    agent: str | None = None
    decision: str | None = None
    trace_id: str | None = None
    rule: str | None = None
    layer: str | None = None
    threat: str | None = None
    request: str | None = None
    """The retry key of a decision's subject and request_id (`core.retries.retry_key`)."""

    def tags(self) -> list[str]:
        """The tag conditions, `rule:` first."""
        found = [(k, getattr(self, k)) for k in TAG_KINDS]
        return [f"{k}:{v}" for k, v in found if v]

    def columns(self) -> list[tuple[str, str]]:
        """(facet column, value) equality conditions."""
        found = [(column, getattr(self, name)) for name, column in _COLUMNS.items()]
        return [(column, value) for column, value in found if value]


@dataclass
class SearchQuery:
    """The SQL of one page of matches, newest first, for a placeholder style (`?` or `%s`)."""

    where: LogFilter
    before: int | None
    limit: int
    mark: str = "?"
    low: int | None = None
    high: int | None = None
    fence: str = ""
    """Appended to each per-record probe: PostgreSQL's ` OFFSET 0` keeps a probe a per-row
    subplan, where the planner would otherwise hash-join two correlated tags and sort."""
    params: list[Any] = field(default_factory=list)

    def sql(self) -> str:
        """`SELECT idx ...` of at most `limit` matching indexes below `before`, descending.

        `low` and `high` are the inclusive index bounds of the filter's time range (TIME_BOUNDS).

        The walk is driven by the most selective key the filter names: the agent's or the trace
        id's (column, idx) index; else the first tag's (tag, idx) key; else the facet table.
        The other conditions are checked on each index visited, newest first, so the page ends
        at its `limit`-th match.
        """
        self.params = []
        tags = self.where.tags()
        conditions: list[str] = []
        columns = dict(self.where.columns())
        if tags and not ("subject" in columns or "trace_id" in columns):
            driver, alias = "audit_tags t0", "t0"
            conditions.append(f"t0.tag = {self._bind(tags[0])}")
            joins = " JOIN audit_facets f ON f.idx = t0.idx" if self._needs_facets() else ""
            probed = tags[1:]
        else:
            driver, alias, joins, probed = "audit_facets f", "f", "", tags
        for n, tag in enumerate(probed, start=1):
            conditions.append(
                # S608: the text holds fixed identifiers only; every value is a bound parameter.
                f"EXISTS (SELECT 1 FROM audit_tags t{n} WHERE t{n}.tag = {self._bind(tag)} "  # noqa: S608
                f"AND t{n}.idx = {alias}.idx{self.fence})"
            )
        for column, value in self.where.columns():
            conditions.append(f"f.{column} = {self._bind(value)}")
        if self.low is not None:
            conditions.append(f"{alias}.idx >= {self._bind(self.low)}")
        if self.high is not None:
            conditions.append(f"{alias}.idx <= {self._bind(self.high)}")
        if self.before is not None:
            conditions.append(f"{alias}.idx < {self._bind(self.before)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return (
            f"SELECT {alias}.idx FROM {driver}{joins}{where} "  # noqa: S608 (bound values only)
            f"ORDER BY {alias}.idx DESC LIMIT {self._bind(self.limit)}"
        )

    def _needs_facets(self) -> bool:
        where = self.where
        return bool(where.columns())

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return self.mark


def time_bounds_sql(mark: str) -> tuple[str, str]:
    """(first index with `at >= ?`, last index with `at < ?`), each one step of the `at` index."""
    return (
        f"SELECT idx FROM audit_facets WHERE at >= {mark} ORDER BY at, idx LIMIT 1",  # noqa: S608
        f"SELECT idx FROM audit_facets WHERE at < {mark} ORDER BY at DESC, idx DESC LIMIT 1",  # noqa: S608
    )


def time_bounds(where: LogFilter, first: Any, last: Any) -> tuple[int | None, int | None] | None:
    """The inclusive index bounds of `where`'s time range; None when no record is in it.

    `first(since)` and `last(until)` run the TIME_BOUNDS lookups and return an index or None.
    """
    low = high = None
    if where.since:
        low = first(where.since)
        if low is None:
            return None
    if where.until:
        high = last(where.until)
        if high is None:
            return None
    if low is not None and high is not None and low > high:
        return None
    return low, high


def tally_sql(mark: str) -> tuple[str, str]:
    """(first index at or after a time, denials and escalations per layer tag from an index).

    The second counts records with the tag `layer:<id>` (bound twice: the tag, then the index
    and the time again), grouped by decision, for `deny` and `require_hitl` only.
    """
    # S608: `mark` is the driver's placeholder (`?` or `%s`); every value is bound.
    first = f"SELECT idx FROM audit_facets WHERE at >= {mark} ORDER BY at, idx LIMIT 1"  # noqa: S608
    counts = (
        "SELECT f.decision, COUNT(*) FROM audit_tags t JOIN audit_facets f ON f.idx = t.idx "  # noqa: S608
        f"WHERE t.tag = {mark} AND t.idx >= {mark} AND f.at >= {mark} "
        "AND f.decision IN ('deny', 'require_hitl') GROUP BY f.decision"
    )
    return first, counts


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else ()
