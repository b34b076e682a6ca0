"""The Protocols the core consumes; adapters in `engine/`, `audit/` and `metrics` implement them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """The active policy bundle."""

    revision: str
    digest: str
    activated_at: str


@dataclass(frozen=True, slots=True)
class EngineResult:
    """What an engine returned for `data.maestro.decision.result`, unchecked."""

    value: Any
    bundle: BundleInfo
    engine_decision_id: str | None = None


class PolicyEngine(Protocol):
    """Evaluates the decision document for one input."""

    name: str

    async def evaluate(self, document: dict[str, Any], timeout_s: float) -> EngineResult:
        """Evaluate; raise `EngineError`/`EngineTimeout` on failure, `NotReady` with no bundle."""
        ...

    def active_bundle(self) -> BundleInfo | None:
        """The bundle decisions are made with now, or None."""
        ...

    async def ready(self) -> bool:
        """True when a decision can be made now."""
        ...


@dataclass(frozen=True, slots=True)
class AuditReceipt:
    """Where an appended record landed."""

    index: int
    leaf_hash: str


class AuditLog(Protocol):
    """An append-only, hash-chained log of records; append returns once the record is durable."""

    async def append(self, record: dict[str, Any]) -> AuditReceipt:
        """Seal the record (index, previous hash) and make it durable; raise AuditUnavailable."""
        ...

    async def size(self) -> int:
        """Number of records."""
        ...

    async def writable(self) -> bool:
        """True when an append would succeed now."""
        ...


class DecisionMetrics(Protocol):
    """What the decision point reports about each decision."""

    def decision(
        self,
        kind: str,
        decision: str,
        mode: str,
        seconds: float,
        rules: list[str],
        layers: Mapping[str, str],
    ) -> None:
        """Count one decision and its latency."""
        ...

    def engine(self, engine: str, seconds: float, error: str | None) -> None:
        """Record one engine evaluation."""
        ...

    def audit_append(self, seconds: float, failed: bool) -> None:
        """Record one audit append."""
        ...
