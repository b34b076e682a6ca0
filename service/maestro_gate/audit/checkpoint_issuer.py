"""Issuing signed checkpoints of the audit log, on a schedule and on demand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from maestro_gate.audit.checkpoint_keys import CheckpointSigner, load_signer
from maestro_gate.core.decision.ports import AuditStore, StoredCheckpoint
from maestro_gate.core.ledger.checkpoint import Checkpoint
from maestro_gate.periodic import Periodic


def issue(log: Any, signer: CheckpointSigner, size: int | None = None) -> StoredCheckpoint:
    """Sign and store a checkpoint of a synchronous TreeLog at `size` (default: all records)."""
    size = log.count() if size is None else size
    root = log.root_at(size)
    note = signer.sign(Checkpoint(signer.origin, size, root))
    stored = StoredCheckpoint(size, root, note, datetime.now(UTC).isoformat(timespec="seconds"))
    log.keep_checkpoint(stored)
    return stored


class Checkpointer:
    """Signs checkpoints of one log every `interval_s` seconds (when it grew) and on demand."""

    def __init__(
        self,
        log: AuditStore,
        key_file: Path,
        origin: str,
        *,
        interval_s: float,
        create_key: bool,
    ) -> None:
        self.log = log
        self.key_file = key_file
        self.origin = origin
        self.interval_s = interval_s
        self.create_key = create_key
        self.signer: CheckpointSigner | None = None
        self._lock = asyncio.Lock()
        self._log = structlog.get_logger("maestro_gate.audit")
        self._schedule = Periodic("audit-checkpoints", interval_s, self._scheduled, self._failed)

    async def start(self) -> None:
        """Load (or, where allowed, create) the signing key and start the schedule."""
        signer, created = await asyncio.to_thread(
            load_signer, self.key_file, self.origin, create=self.create_key
        )
        self.signer = signer
        if created:
            self._log.warning(
                "checkpoint_key_created",
                path=str(self.key_file.resolve()),
                vkey=signer.verifier_key.text(),
            )
        self._schedule.start()

    async def close(self) -> None:
        """Stop the schedule."""
        await self._schedule.stop()

    async def issue(self) -> StoredCheckpoint:
        """Sign and store a checkpoint of the log as it is now."""
        if self.signer is None:
            raise RuntimeError("the checkpointer has not started")
        async with self._lock:
            size = await self.log.size()
            root = await self.log.root(size)
            note = self.signer.sign(Checkpoint(self.origin, size, root))
            stored = StoredCheckpoint(
                size, root, note, datetime.now(UTC).isoformat(timespec="seconds")
            )
            await self.log.save_checkpoint(stored)
        return stored

    async def _scheduled(self) -> None:
        latest = await self.log.latest_checkpoint()
        if latest is None or latest.size < await self.log.size():
            stored = await self.issue()
            self._log.info("checkpoint_issued", tree_size=stored.size)

    def _failed(self, exc: Exception) -> None:
        self._log.error("checkpoint_failed", error=str(exc))
