"""The running gate: start and stop its parts, reload its bundle, say whether it can decide.

`wiring.build(settings)` makes a `Gate`; the FastAPI lifespan (or the CLI) runs `start()` and
`close()`. The engine is only ever seen through its contract (`core.ports.ServingEngine`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from maestro_gate.approvals.operator_controls import OperatorControls
from maestro_gate.approvals.sql import SqlApprovalStore
from maestro_gate.approvals.sync import ControlsSync
from maestro_gate.audit.checkpoint_issuer import Checkpointer
from maestro_gate.audit.store import TreeLog
from maestro_gate.auth.authenticator import Authenticator
from maestro_gate.config import Settings
from maestro_gate.core.decision.controls import Controls
from maestro_gate.core.decision.deciding import DecisionService
from maestro_gate.core.decision.health import EngineHealth
from maestro_gate.core.decision.ports import BundleInfo, ServingEngine
from maestro_gate.core.decision.recorder import AuditRecorder
from maestro_gate.core.errors import AuditUnavailable, BundleError, EngineError
from maestro_gate.engine.local import BundleSource
from maestro_gate.engine.watch import BundleWatcher, fingerprint
from maestro_gate.metrics import PrometheusMetrics


class BundleReloads:
    """Reloads the engine's bundle one at a time, counting refusals and keeping the last error."""

    def __init__(self, engine: ServingEngine, metrics: PrometheusMetrics) -> None:
        self.engine = engine
        self.metrics = metrics
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._log = structlog.get_logger("maestro_gate")

    async def reload(self, *, allow_downgrade: bool = False, by: str | None = None) -> BundleInfo:
        """Activate the configured bundle, or raise and keep the active one.

        The bundle watcher and the admin endpoint never race each other. A store that cannot
        be read or written refuses the bundle with AuditUnavailable.
        """
        async with self._lock:
            try:
                info = await self.engine.reload(allow_downgrade=allow_downgrade, by=by)
            except BundleError as exc:
                self.last_error = exc.message
                self.metrics.bundle_failures.inc()
                raise
            except (EngineError, AuditUnavailable) as exc:
                self.last_error = exc.message
                raise
        self.last_error = None
        status = self.engine.status()
        self.metrics.bundle_activated(info.revision, info.digest, status.name)
        self._log.info(
            "bundle_activated",
            revision=info.revision,
            digest=info.digest,
            engine=status.name,
            engine_patches=status.patches,
        )
        return info


class Readiness:
    """`/ready`'s checks and `/v1/status`'s body, from the engine, its health and the log."""

    def __init__(
        self,
        engine: ServingEngine,
        audit: TreeLog,
        health: EngineHealth,
        reloads: BundleReloads,
        decisions: DecisionService,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.health = health
        self.reloads = reloads
        self._decisions = decisions

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether decisions can be made and recorded now, and the body that says so."""
        # Ask the engine first: an OPA engine learns its active revision when OPA becomes healthy.
        engine_reachable = await self.engine.ready()
        busy = await self.health.check()
        checks = {
            "bundle_active": self.engine.active_bundle() is not None,
            "engine_reachable": engine_reachable,
            "engine_free": busy is None,
            "audit_writable": await self.audit.writable(),
        }
        ok = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ok else "not_ready", "checks": checks}
        if not ok:
            body = {"code": "not_ready", "message": "the gate cannot decide yet", **body}
            if busy is not None:
                body["engine_problem"] = busy
            if not checks["audit_writable"] and self.audit.problem is not None:
                body["audit_problem"] = self.audit.problem
        return ok, body

    async def status(self) -> dict[str, Any]:
        """The active bundle, engine, audit size, mode and the last reload error."""
        bundle = self.engine.active_bundle()
        return {
            "engine": self.engine.name,
            "engine_reachable": await self.engine.ready(),
            "mode": self._decisions.point.mode,
            "bundle": (
                {
                    "revision": bundle.revision,
                    "digest": bundle.digest,
                    "activated_at": bundle.activated_at,
                }
                if bundle
                else None
            ),
            "last_reload_error": self.reloads.last_error,
            "audit": {
                "records": await self.audit.size(),
                "writable": await self.audit.writable(),
                # No signed checkpoints exist yet; the field is reserved for the latest one.
                "last_checkpoint": None,
            },
        }


@dataclass
class Gate:
    """Everything the service runs, built by `wiring.build`; `start()` and `close()` run it."""

    engine: ServingEngine
    audit: TreeLog
    metrics: PrometheusMetrics
    decisions: DecisionService
    reloads: BundleReloads
    readiness: Readiness
    controls: ControlsSync
    checkpointer: Checkpointer
    services: Services
    settings: Settings
    redis: Any = field(default=None, repr=False)
    watch_s: float = 0.0
    watcher: BundleWatcher | None = field(default=None, repr=False)
    _log: Any = field(default_factory=lambda: structlog.get_logger("maestro_gate"), repr=False)

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry `/metrics` serves."""
        return self.metrics.registry

    def current_controls(self) -> Controls:
        """The controls in force on the decision point."""
        return self.decisions.point.controls

    async def start(self) -> None:
        """Open the audit log and activate the configured bundle (a failure leaves none active)."""
        self.audit.start()
        await self.checkpointer.start()
        try:
            self.metrics.audit_records.set(self.audit.count())
        except Exception as exc:  # an unreadable store: /ready says so, appends answer 503
            self._log.error("audit_unreadable", error=str(exc))
        await self.controls.start()
        await self.engine.start()
        watched: list[Path | None] = [*self.engine.status().watched]
        seen = await asyncio.to_thread(fingerprint, *watched) if watched else ""
        try:
            await self.reloads.reload()
        except (BundleError, EngineError, AuditUnavailable) as exc:
            self._log.error("bundle_refused", error=exc.message, engine=self.engine.name)
        if watched:
            self.watcher = BundleWatcher(watched, self.watch_s, self.reloads.reload)
            self.watcher.start(seen)

    async def reload(self, *, allow_downgrade: bool = False, by: str | None = None) -> BundleInfo:
        """Reload the bundle now (`BundleReloads.reload`)."""
        return await self.reloads.reload(allow_downgrade=allow_downgrade, by=by)

    async def close(self) -> None:
        """Stop the bundle watcher and the engine workers, and drain the audit writer."""
        if self.watcher is not None:
            await self.watcher.stop()
        await self.engine.close()
        await self.controls.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.checkpointer.close()
        await asyncio.to_thread(self.audit.close)


@dataclass(frozen=True)
class Services:
    """What the API (and any other front door) is given: narrow services, never the Gate.

    A route reads them with `api.services.services_of(request)`.
    """

    decisions: DecisionService
    """Decide a request for a caller: subject binding, evaluation, audit (every front door)."""
    events: AuditRecorder
    """Append an audited event record (admin changes, votes, refused callers)."""
    audit: TreeLog
    """Read the audit log: records, proofs, checkpoints, size, writability."""
    checkpoints: Checkpointer
    """Issue a signed checkpoint of the log now."""
    controls: OperatorControls
    """The enforcement mode and emergency stops: read, and change audit first."""
    approvals: SqlApprovalStore
    """Human approvals: find, read, vote."""
    authenticator: Authenticator
    """Who a credential names."""
    refused: Callable[[str], None]
    """Count one refused caller by error code (`maestro_refused_callers`)."""
    reloads: BundleReloads
    """Reload the bundle, one at a time."""
    readiness: Readiness
    """`/ready` and `/v1/status`."""
    registry: CollectorRegistry
    """The Prometheus registry `/metrics` serves."""
    engine: ServingEngine
    """Evaluate without deciding (posture probes: no audit, no state); never to answer a caller.
    `engine.active_bundle()` is the bundle in force."""
    bundle_source: BundleSource | None
    """Where a local engine reads its bundle (the configured directory and registry file);
    None when an OPA server activates its own."""
    max_body_bytes: int
    max_depth: int
