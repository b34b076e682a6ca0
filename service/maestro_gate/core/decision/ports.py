"""The Protocols the core consumes; `engine/`, `audit/`, `state/` and `metrics` implement them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from maestro_gate.core.decision.budgets import Reservation
from maestro_gate.core.decision.requests import AnyRequest


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
class EngineStatus:
    """What an engine says about itself, for readiness, metrics and the activation log."""

    name: str
    bundle: BundleInfo | None
    up: bool
    """A bundle is loaded (a local engine) or the server was reachable when last asked (OPA)."""
    watched: tuple[Path, ...] = ()
    """Files whose change should reload the engine (none for an OPA server)."""
    patches: object = None
    """The state of the native fixes, for an engine that has them."""


class ServingEngine(PolicyEngine, Protocol):
    """The one contract every configured engine keeps: start, evaluate, reload, close, status.

    Nothing outside an engine asks which engine it is: how a bundle becomes active (compiled
    from the bundle directory here, or activated by an OPA server and asked about) is the
    engine's own business behind `reload`.
    """

    async def start(self) -> None:
        """Open what the engine needs (connections, pools); call from the running loop."""
        ...

    async def reload(self, *, allow_downgrade: bool = False, by: str | None = None) -> BundleInfo:
        """Make the configured bundle active, or raise and keep the active one."""
        ...

    async def close(self) -> None:
        """Release workers and connections."""
        ...

    def status(self) -> EngineStatus:
        """The engine's name, active bundle and state now (no I/O)."""
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


class AuditEntry(NamedTuple):
    """One stored record: its index, stored leaf hash and exact canonical bytes."""

    idx: int
    leaf_hash: bytes
    record: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as the log keeps it."""

    size: int
    root: bytes
    note: str
    issued_at: str


@dataclass(frozen=True, slots=True)
class AcceptedRevision:
    """The newest signed bundle the store has accepted: the floor reloads must rise above."""

    revision: str
    digest: str
    accepted_at: str


class AuditStore(AuditLog, Protocol):
    """An AuditLog that also serves its records, Merkle proofs and signed checkpoints."""

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Records with `start <= index < end`, in index order."""
        ...

    async def entry(self, decision_id: str) -> AuditEntry | None:
        """The record of one decision (or event) id, or None."""
        ...

    async def root(self, size: int) -> bytes:
        """The RFC 6962 root of the first `size` records."""
        ...

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of record `index` in the tree of `size` records."""
        ...

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof that the tree of `first` records is a prefix of the tree of `second`."""
        ...

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest tree size, or None."""
        ...

    async def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Keep a signed checkpoint (one per tree size)."""
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


class StateSource(Protocol):
    """Supplies the `agent` and `session` parts of `input.state` and learns each outcome.

    The DecisionPoint adds `now_ns`, `pending_approvals`, `emergency_stop`, `caller` and
    `approval` itself, from the approval store, the controls and the authenticated caller.
    A costed request holds its cost on the agent's budget from the snapshot until it is
    decided: the DecisionPoint settles every reservation exactly once, by `observe` or, when
    the request ends without a decision (an audit failure, an error, a cancellation), by
    `release`.
    """

    def reservation(self, request: AnyRequest, cost: float) -> Reservation:
        """A hold of `cost` on the agent's current budget period; nothing is held yet."""
        ...

    async def snapshot(
        self, request: AnyRequest, reservation: Reservation | None = None
    ) -> dict[str, Any]:
        """`{"agent": {...}, "session": {...}}` for this request.

        With a reservation, atomically add its cost to the period's spend and report as
        `budget_spent` what was spent and reserved before it, so that concurrent requests each
        see the others' costs and none overdraws.
        """
        ...

    async def observe(
        self, request: AnyRequest, decision: str, reservation: Reservation | None = None
    ) -> None:
        """Record the decided request (rates, session history); spend the reservation when
        the decision is allow, release it otherwise."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation; a no-op for one that was never placed or is settled."""
        ...


def empty_state(window_seconds: int = 0) -> dict[str, Any]:
    """The `agent` and `session` parts when nothing has been observed."""
    return {
        "agent": {"requests_in_window": 0, "window_seconds": window_seconds, "budget_spent": 0},
        "session": {"recent": []},
    }
