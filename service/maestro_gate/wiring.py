"""The composition root: `build(settings)` makes every part; `Gate.start()`/`close()` run them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prometheus_client
import structlog

from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.config import Settings
from maestro_gate.core.errors import BundleError, EngineError
from maestro_gate.core.point import DecisionPoint
from maestro_gate.core.ports import BundleInfo
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.opa import OpaEngine
from maestro_gate.metrics import PrometheusMetrics

# Both satisfy core.ports.PolicyEngine; they differ in how a bundle becomes active: the embedded
# engine compiles the bundle directory here, OPA activates its own and is asked what it runs.
GateEngine = EmbeddedEngine | OpaEngine


def sqlite_path(dsn: str) -> Path:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` DSN."""
    if not dsn.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite DSN: {dsn!r}")
    return Path(dsn[len("sqlite:///") :])


@dataclass
class Gate:
    """Everything the service runs, built from one Settings."""

    settings: Settings
    engine: GateEngine
    audit: SqliteAuditLog
    metrics: PrometheusMetrics
    point: DecisionPoint
    last_reload_error: str | None = None
    _log: Any = field(default_factory=lambda: structlog.get_logger("maestro_gate"))

    async def start(self) -> None:
        """Open the audit log and activate the configured bundle (a failure leaves none active)."""
        self.audit.start()
        self.metrics.audit_records.set(self.audit.count())
        if isinstance(self.engine, OpaEngine):
            await self.engine.open()
        try:
            await self.reload()
        except (BundleError, EngineError) as exc:
            self._log.error(
                "bundle_refused", error=exc.message, bundle_dir=str(self.settings.bundle_dir)
            )

    async def reload(self) -> BundleInfo:
        """Read, check and activate the bundle; on failure keep the active one and raise."""
        try:
            if isinstance(self.engine, OpaEngine):
                info = await self.engine.refresh()
            else:
                info = await asyncio.to_thread(self._load, self.engine)
        except BundleError as exc:
            self.last_reload_error = exc.message
            self.metrics.bundle_failures.inc()
            raise
        except EngineError as exc:
            self.last_reload_error = exc.message
            raise
        self.last_reload_error = None
        self.metrics.bundle_activated(info.revision, info.digest, self.engine.name)
        self._log.info("bundle_activated", revision=info.revision, digest=info.digest)
        return info

    def _load(self, engine: EmbeddedEngine) -> BundleInfo:
        bundle = read_bundle(self.settings.bundle_dir, self.settings.registry_file)
        return engine.load(bundle)

    async def close(self) -> None:
        """Stop the engine workers and drain the audit writer."""
        if isinstance(self.engine, OpaEngine):
            await self.engine.close()
        else:
            self.engine.close()
        await asyncio.to_thread(self.audit.close)


def build(settings: Settings) -> Gate:
    """Make the engine, audit log, metrics and decision point that `settings` describe."""
    prometheus_client.disable_created_metrics()
    metrics = PrometheusMetrics()
    engine = _engine(settings, metrics)
    audit = SqliteAuditLog(sqlite_path(settings.audit_dsn), synchronous=settings.audit_synchronous)
    point = DecisionPoint(
        engine,
        audit,
        metrics,
        timeout_s=settings.decision_timeout_ms / 1000,
        mode=settings.mode,
        mask_pointers=settings.audit_mask,
    )
    return Gate(settings=settings, engine=engine, audit=audit, metrics=metrics, point=point)


def _engine(settings: Settings, metrics: PrometheusMetrics) -> GateEngine:
    if settings.engine == "opa":
        opa = OpaEngine(
            settings.opa_url,
            bundle_name=settings.opa_bundle,
            request_timeout_s=max(settings.decision_timeout_ms / 1000, 1.0),
            on_activate=lambda info: metrics.bundle_activated(info.revision, info.digest, "opa"),
        )
        metrics.watch_engine(opa.name, lambda: opa.reachable)
        return opa
    embedded = EmbeddedEngine(workers=settings.engine_workers)
    metrics.watch_engine(embedded.name, lambda: embedded.active_bundle() is not None)
    return embedded
