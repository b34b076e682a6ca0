"""What the SQLite and PostgreSQL logs share: the group-commit writer, sealing, proofs.

Concurrent `append` calls queue their record bodies; one writer thread takes every waiting
body and hands the batch to the backend's `_commit`, which, inside one transaction that holds
the log's write lock, reads the tail and the frontier (the complete subtrees of the current
tree), seals the bodies after the tail (`seal_batch`), inserts the records and the newly
completed subtree hashes, and commits. Only then are the callers resolved. Reads (entries,
proofs, checkpoints) are synchronous backend methods with async wrappers run in a thread.

`writable()` (what `/ready` reports) probes the store itself: a small committed write in the
store's own `gate_probe` table, run at most once per `probe_ttl_s` and only trusted when it is
newer than the writer's last failure. So readiness falls when the store fails and rises again
by itself once it recovers, with no decision traffic. A rolled-back write would be cheaper but
proves nothing on SQLite, whose WAL pages reach the disk only at commit: on a full disk it
succeeds while every append fails.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from maestro_gate.audit.facets import FacetRow, LogFilter, facets_of
from maestro_gate.core.decision.ports import (
    AcceptedRevision,
    AuditEntry,
    AuditReceipt,
    StoredCheckpoint,
)
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.chain import GENESIS, seal
from maestro_gate.core.ledger.verify import Row

_Pending = tuple[dict[str, Any], asyncio.Future[AuditReceipt], asyncio.AbstractEventLoop]
_STOP = object()
Outcome = AuditReceipt | BaseException
PROBE_TTL_S = 1.0


@dataclass(frozen=True)
class Probe:
    """The outcome of one write probe of the store, at a `time.monotonic()` instant."""

    at: float
    problem: str | None


@dataclass
class SealedBatch:
    """Records sealed after a tail: rows to insert, subtree hashes completed, caller outcomes,
    and the console's search facets and tags of the records (`audit/facets.py`)."""

    rows: list[tuple[int, str, bytes, bytes]]
    nodes: dict[merkle.Node, bytes]
    outcomes: list[Outcome]
    facets: list[FacetRow]
    tags: list[tuple[str, int]]


def seal_batch(
    size: int,
    prev: str,
    frontier: Mapping[merkle.Node, bytes],
    bodies: list[dict[str, Any]],
    last_at: str | None = None,
) -> SealedBatch:
    """Seal `bodies` after a tree of `size` records whose last leaf is `prev`.

    A body that cannot be canonicalised fails alone and takes no index. `last_at` is the
    facet time of record `size - 1` (facet times never decrease, `audit/facets.py`).
    """
    rows: list[tuple[int, str, bytes, bytes]] = []
    outcomes: list[Outcome] = []
    leaves: list[bytes] = []
    facets: list[FacetRow] = []
    tags: list[tuple[str, int]] = []
    index = size
    for body in bodies:
        try:
            _, data, leaf = seal(body, index, prev)
        except (ValueError, TypeError) as exc:
            outcomes.append(AuditUnavailable(f"record rejected: {exc}"))
            continue
        rows.append((index, str(body.get("decision_id", "")), leaf, data))
        facet, tagged = facets_of(index, body, last_at)
        last_at = facet[1]
        facets.append(facet)
        tags.extend(tagged)
        leaves.append(leaf)
        outcomes.append(AuditReceipt(index=index, leaf_hash=leaf.hex()))
        index, prev = index + 1, leaf.hex()
    return SealedBatch(rows, merkle.extend(size, frontier, leaves), outcomes, facets, tags)


def tail_of(row: tuple[int, bytes] | None) -> tuple[int, str]:
    """(size, previous leaf hex) from the last stored (idx, leaf_hash) row, if any."""
    return (int(row[0]) + 1, bytes(row[1]).hex()) if row else (0, GENESIS)


class TreeLog(ABC):
    """A durable, hash-chained, Merkle-tree audit log; backends supply storage."""

    def __init__(self, *, batch_max: int = 2048, probe_ttl_s: float = PROBE_TTL_S) -> None:
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened = False
        self._open_lock = threading.Lock()
        self._failure: str | None = None
        self._failed_at = float("-inf")
        self._probe_ttl_s = probe_ttl_s
        self._probe_lock = threading.Lock()
        self._probed: Probe | None = None

    # backend primitives -------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Create the schema and open what the writer needs (called in `start`)."""

    @abstractmethod
    def _shutdown(self) -> None:
        """Release connections after the writer stopped."""

    @abstractmethod
    def _probe(self) -> None:
        """Commit one small write to the store's `gate_probe` table; raise if it cannot."""

    @abstractmethod
    def accepted_revision(self) -> AcceptedRevision | None:
        """The stored floor of signed bundle revisions, if one was ever accepted."""

    @abstractmethod
    def accept_revision(self, accepted: AcceptedRevision) -> None:
        """Store `accepted` as the floor of signed bundle revisions (replacing the last one)."""

    @abstractmethod
    def _commit(self, bodies: list[dict[str, Any]]) -> list[Outcome]:
        """Seal and commit a batch atomically after the current tail; raise AuditUnavailable."""

    @abstractmethod
    def count(self) -> int:
        """Number of records."""

    @abstractmethod
    def rows(self, start: int = 0, end: int | None = None) -> Iterator[AuditEntry]:
        """Records with `start <= index < end`, in index order."""

    def verifier_rows(self, start: int = 0, end: int | None = None) -> Iterator[Row]:
        """Rows for `core.verify` (index, leaf hash, record bytes, None) in index order."""
        for idx, leaf, data in self.rows(start, end):
            yield (idx, leaf, data, None)

    @abstractmethod
    def spec(self) -> tuple[str, ...]:
        """What another process needs to open this store read-only (picklable)."""

    @abstractmethod
    def find(self, decision_id: str) -> AuditEntry | None:
        """The record with this decision (or event) id."""

    @abstractmethod
    def search(self, where: LogFilter, before: int | None, limit: int) -> list[AuditEntry]:
        """The newest `limit` records matching `where` with index below `before`, newest first."""

    @abstractmethod
    def tally(self, layers: Iterable[str], since: str) -> dict[str, dict[str, int]]:
        """Per layer id: decision (`deny`, `require_hitl`) -> records since `since` naming it."""

    @abstractmethod
    def read_nodes(self, nodes: list[merkle.Node]) -> dict[merkle.Node, bytes]:
        """Stored hashes of complete subtrees (level 0: leaf hashes); raise KeyError if missing."""

    @abstractmethod
    def stored_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored subtree hash of level 1 and above, (level, index, hash), level by level."""

    @abstractmethod
    def stored_level(self, level: int) -> list[bytes]:
        """The stored subtree hashes of one level, by index (gaps are not marked)."""

    @abstractmethod
    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, by tree size."""

    @abstractmethod
    def last_checkpoint(self) -> StoredCheckpoint | None:
        """The stored checkpoint with the largest tree size."""

    @abstractmethod
    def keep_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint unless one of that size exists."""

    # lifecycle and the AuditStore protocol --------------------------------------------------
    def start(self) -> None:
        """Create the schema and start the writer thread.

        A store that cannot be opened yet (read-only, full, unreachable) is not fatal: the
        writer opens it at its first batch, every append fails with AuditUnavailable until
        then, and `writable()` is false.
        """
        try:
            self._ensure_open()
        except Exception as exc:
            self._failed(f"the audit store cannot be opened: {exc}")
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish queued appends and stop the writer."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        with self._open_lock:
            self._shutdown()
            self._opened = False

    async def append(self, record: dict[str, Any]) -> AuditReceipt:
        """Seal and commit one record body; raise AuditUnavailable if it cannot be made durable."""
        if self._thread is None or not self._thread.is_alive():
            raise AuditUnavailable("the audit writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditReceipt] = loop.create_future()
        self._queue.put((record, future, loop))
        return await future

    async def size(self) -> int:
        """Number of records."""
        return await asyncio.to_thread(self.count)

    async def writable(self) -> bool:
        """True when an append would succeed now: the writer runs, and a write probe of the
        store at most `probe_ttl_s` old, and newer than the writer's last failure, succeeded."""
        if self._thread is None or not self._thread.is_alive():
            return False
        probe = self._probed
        if probe is None or time.monotonic() - probe.at >= self._probe_ttl_s:
            probe = await asyncio.to_thread(self.probe)
        return probe.problem is None and probe.at > self._failed_at

    def probe(self) -> Probe:
        """Probe the store now (or take a probe another thread just ran); never raises."""
        with self._probe_lock:
            probe = self._probed
            if probe is not None and time.monotonic() - probe.at < self._probe_ttl_s:
                return probe
            at = time.monotonic()
            try:
                self._ensure_open()
                self._probe()
                problem = None
            except Exception as exc:
                problem = str(exc) or type(exc).__name__
            self._probed = Probe(at=at, problem=problem)
            return self._probed

    @property
    def problem(self) -> str | None:
        """Why the store was last found unwritable (by the writer or a probe), if it was."""
        probe = self._probed
        if probe is not None and probe.at > self._failed_at:
            return probe.problem
        return self._failure

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Records with `start <= index < end`."""
        return await asyncio.to_thread(lambda: list(self.rows(start, end)))

    async def entry(self, decision_id: str) -> AuditEntry | None:
        """The record of one decision id."""
        return await asyncio.to_thread(self.find, decision_id)

    async def page(self, where: LogFilter, before: int | None, limit: int) -> list[AuditEntry]:
        """`search` in a thread."""
        return await asyncio.to_thread(self.search, where, before, limit)

    async def recorded(self, key: str) -> AuditEntry | None:
        """The decision record whose subject and request_id have this retry key, or None."""
        found = await self.page(LogFilter(request=key), None, 1)
        return found[0] if found else None

    async def layer_tally(self, layers: Iterable[str], since: str) -> dict[str, dict[str, int]]:
        """`tally` in a thread."""
        return await asyncio.to_thread(self.tally, list(layers), since)

    def root_at(self, size: int) -> bytes:
        """The root of the first `size` records, from O(log n) stored subtrees."""
        return merkle.root(size, self.read_nodes)

    def prove_inclusion(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof from stored subtrees."""
        return merkle.inclusion_proof(index, size, self.read_nodes)

    def prove_consistency(self, first: int, second: int) -> list[bytes]:
        """Consistency proof from stored subtrees."""
        return merkle.consistency_proof(first, second, self.read_nodes)

    async def root(self, size: int) -> bytes:
        """The root of the first `size` records."""
        return await asyncio.to_thread(self.root_at, size)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of record `index` in the tree of `size` records."""
        return await asyncio.to_thread(self.prove_inclusion, index, size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof that the first `first` records are a prefix of the first `second`."""
        return await asyncio.to_thread(self.prove_consistency, first, second)

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The newest stored checkpoint."""
        return await asyncio.to_thread(self.last_checkpoint)

    async def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint."""
        await asyncio.to_thread(self.keep_checkpoint, checkpoint)

    # the writer ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Pending] = [first]  # type: ignore[list-item]
            stop = False
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._write(batch)
            if stop:
                return

    def _ensure_open(self) -> None:
        with self._open_lock:
            if not self._opened:
                self._open()
                self._opened = True

    def _failed(self, problem: str) -> None:
        self._failure = problem
        self._failed_at = time.monotonic()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            self._ensure_open()
            outcomes = self._commit([body for body, _, _ in batch])
            self._failure = None
        except Exception as exc:
            self._failed(str(exc))
            failure = (
                exc
                if isinstance(exc, AuditUnavailable)
                else AuditUnavailable(f"audit commit failed: {exc}")
            )
            outcomes = [failure] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:
                continue  # the caller's loop has closed; nobody is waiting any more


def _settle(items: list[tuple[asyncio.Future[AuditReceipt], Outcome]]) -> None:
    for future, outcome in items:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
