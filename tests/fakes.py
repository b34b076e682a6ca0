"""Fakes that implement the core's Protocols for core tests (real implementations, in memory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_gate.core.decision.ports import AuditReceipt, BundleInfo, EngineResult
from maestro_gate.core.errors import AuditUnavailable
from maestro_gate.core.ledger.chain import GENESIS, seal

BUNDLE = BundleInfo(revision="r1", digest="sha256:abc", activated_at="2026-01-01T00:00:00Z")
ALLOW = {"decision": "allow", "reasons": [], "obligations": [], "layers": {}}


class ScriptedEngine:
    """A PolicyEngine answering each evaluation with a fixed value or raising a fixed error."""

    name = "scripted"

    def __init__(self, answer: Any = ALLOW, error: Exception | None = None) -> None:
        self.answer = answer
        self.error = error
        self.documents: list[dict[str, Any]] = []

    async def evaluate(self, document: dict[str, Any], timeout_s: float) -> EngineResult:
        """Record the input; raise the scripted error or return the scripted answer."""
        self.documents.append(document)
        if self.error is not None:
            raise self.error
        return EngineResult(value=self.answer, bundle=BUNDLE)

    def active_bundle(self) -> BundleInfo | None:
        """The fixed bundle."""
        return BUNDLE

    async def ready(self) -> bool:
        """Always ready."""
        return True


class MemoryAuditLog:
    """An AuditLog in a list: seals like the real stores; can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.records: list[dict[str, Any]] = []
        self.prev = GENESIS

    async def append(self, record: dict[str, Any]) -> AuditReceipt:
        """Seal and keep the record, or raise AuditUnavailable when failing."""
        if self.fail:
            raise AuditUnavailable("disk full")
        sealed, _, leaf = seal(record, len(self.records), self.prev)
        self.records.append(sealed)
        self.prev = leaf.hex()
        return AuditReceipt(index=sealed["index"], leaf_hash=leaf.hex())

    async def size(self) -> int:
        """Records kept."""
        return len(self.records)

    async def writable(self) -> bool:
        """False when failing."""
        return not self.fail


class RecordingMetrics:
    """DecisionMetrics that remembers what it was told."""

    def __init__(self) -> None:
        self.decisions: list[tuple[str, str, str]] = []
        self.engine_errors: list[str] = []
        self.audit_failures = 0

    def decision(
        self,
        kind: str,
        decision: str,
        mode: str,
        seconds: float,
        rules: list[str],
        layers: Mapping[str, str],
    ) -> None:
        """Remember kind, decision and mode."""
        self.decisions.append((kind, decision, mode))

    def engine(self, engine: str, seconds: float, error: str | None) -> None:
        """Remember engine errors."""
        if error is not None:
            self.engine_errors.append(error)

    def audit_append(self, seconds: float, failed: bool) -> None:
        """Count failed appends."""
        self.audit_failures += int(failed)
