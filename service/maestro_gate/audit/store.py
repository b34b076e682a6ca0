"""What the SQLite and PostgreSQL logs share: the group-commit writer, sealing, proofs.

Concurrent `append` calls queue their record bodies; one writer thread takes every waiting
body and hands the batch to the backend's `_commit`, which, inside one transaction that holds
the log's write lock, reads the tail and the frontier (the complete subtrees of the current
tree), seals the bodies after the tail (`seal_batch`), inserts the records and the newly
completed subtree hashes, and commits. Only then are the callers resolved. Reads (entries,
proofs, checkpoints) are synchronous backend methods with async wrappers run in a thread.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from maestro_gate.core import merkle
from maestro_gate.core.chain import GENESIS, seal
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ports import AuditEntry, AuditReceipt, StoredCheckpoint
from maestro_gate.core.verify import Row

_Pending = tuple[dict[str, Any], asyncio.Future[AuditReceipt], asyncio.AbstractEventLoop]
_STOP = object()
Outcome = AuditReceipt | BaseException


@dataclass
class SealedBatch:
    """Records sealed after a tail: rows to insert, subtree hashes completed, caller outcomes."""

    rows: list[tuple[int, str, bytes, bytes]]
    nodes: dict[merkle.Node, bytes]
    outcomes: list[Outcome]


def seal_batch(
    size: int, prev: str, frontier: Mapping[merkle.Node, bytes], bodies: list[dict[str, Any]]
) -> SealedBatch:
    """Seal `bodies` after a tree of `size` records whose last leaf is `prev`.

    A body that cannot be canonicalised fails alone and takes no index.
    """
    rows: list[tuple[int, str, bytes, bytes]] = []
    outcomes: list[Outcome] = []
    leaves: list[bytes] = []
    index = size
    for body in bodies:
        try:
            _, data, leaf = seal(body, index, prev)
        except (ValueError, TypeError) as exc:
            outcomes.append(AuditUnavailable(f"record rejected: {exc}"))
            continue
        rows.append((index, str(body.get("decision_id", "")), leaf, data))
        leaves.append(leaf)
        outcomes.append(AuditReceipt(index=index, leaf_hash=leaf.hex()))
        index, prev = index + 1, leaf.hex()
    return SealedBatch(rows, merkle.extend(size, frontier, leaves), outcomes)


def tail_of(row: tuple[int, bytes] | None) -> tuple[int, str]:
    """(size, previous leaf hex) from the last stored (idx, leaf_hash) row, if any."""
    return (int(row[0]) + 1, bytes(row[1]).hex()) if row else (0, GENESIS)


class TreeLog(ABC):
    """A durable, hash-chained, Merkle-tree audit log; backends supply storage."""

    def __init__(self, *, batch_max: int = 2048) -> None:
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None

    # backend primitives -------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Create the schema and open what the writer needs (called in `start`)."""

    @abstractmethod
    def _shutdown(self) -> None:
        """Release connections after the writer stopped."""

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
        """Create the schema and start the writer thread."""
        self._open()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish queued appends and stop the writer."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        self._shutdown()

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
        """True while the writer runs and its last commit succeeded."""
        return self._thread is not None and self._thread.is_alive() and self._failure is None

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Records with `start <= index < end`."""
        return await asyncio.to_thread(lambda: list(self.rows(start, end)))

    async def entry(self, decision_id: str) -> AuditEntry | None:
        """The record of one decision id."""
        return await asyncio.to_thread(self.find, decision_id)

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

    def _write(self, batch: list[_Pending]) -> None:
        try:
            outcomes = self._commit([body for body, _, _ in batch])
            self._failure = None
        except Exception as exc:
            self._failure = str(exc)
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
