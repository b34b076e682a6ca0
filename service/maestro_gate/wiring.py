"""The composition root: `build(settings)` makes every part and connects them; nothing more.

What runs them is `runtime.Gate` (start, close, reload); what the API is given is
`runtime.Services`. Nothing here asks which engine is configured once it is made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client
from redis.asyncio import Redis

from maestro_gate.approvals.operator_controls import OperatorControls
from maestro_gate.approvals.postgres import PostgresApprovalStore
from maestro_gate.approvals.sql import SqlApprovalStore
from maestro_gate.approvals.sqlite import SqliteApprovalStore
from maestro_gate.approvals.sync import ControlsSync
from maestro_gate.audit.backends import open_log
from maestro_gate.audit.checkpoint_issuer import Checkpointer
from maestro_gate.audit.store import TreeLog
from maestro_gate.auth.authenticator import build_authenticator
from maestro_gate.authoring.check import refuse_unchecked
from maestro_gate.config import Settings
from maestro_gate.core.decision.admission import Admission, WorkBudget
from maestro_gate.core.decision.controls import Controls
from maestro_gate.core.decision.deciding import DecisionService
from maestro_gate.core.decision.health import EngineHealth
from maestro_gate.core.decision.point import DecisionPoint
from maestro_gate.core.decision.ports import ServingEngine, StateSource
from maestro_gate.core.decision.recorder import AuditRecorder
from maestro_gate.core.decision.registry import RegistryFacts
from maestro_gate.engine.bundle import Bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.inprocess import InProcessOpaEngine
from maestro_gate.engine.local import BundleSource, LocalEngine
from maestro_gate.engine.opa import OpaEngine
from maestro_gate.metrics import PrometheusMetrics
from maestro_gate.runtime import BundleReloads, Gate, Readiness, Services
from maestro_gate.state.memory import MemoryState
from maestro_gate.state.redis import RedisState

__all__ = ["Gate", "build", "sqlite_path"]


def sqlite_path(dsn: str) -> Path:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` DSN."""
    if not dsn.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite DSN: {dsn!r}")
    return Path(dsn[len("sqlite:///") :])


def build(settings: Settings) -> Gate:
    """Make the engine, audit log, metrics, decision point and services `settings` describe."""
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = PrometheusMetrics()
    audit = open_log(settings.audit_dsn, synchronous=settings.audit_synchronous)
    recorder = AuditRecorder(audit, metrics)
    registry = RegistryFacts()
    engine, source = _engine(settings, metrics, audit, recorder, registry)
    approvals = _approval_store(settings)
    state, redis = _state_source(settings, metrics)
    initial = Controls(mode=settings.mode, shadow_layers=frozenset(settings.shadow_layers))
    admission = Admission(
        per_caller=settings.caller_evaluations,
        work=(
            WorkBudget(settings.caller_work_rate, settings.caller_work_burst)
            if settings.caller_work_rate
            else None
        ),
    )
    timeout_s = settings.decision_timeout_ms / 1000
    point = DecisionPoint(
        engine,
        audit,
        metrics,
        timeout_s=timeout_s,
        mode=settings.mode,
        mask_pointers=settings.audit_mask,
        record_state=settings.audit_state,
        state=state,
        approvals=approvals,
        approval_ttl_s=settings.approval_ttl_s,
        controls=initial,
        agent_class=registry.agent_class,
        admission=admission,
        max_weight=settings.max_request_weight,
        tool_cost=registry.tool_cost,
        argument_check=registry.argument_check,
    )
    refused = _refusal_counter(metrics)
    decisions = DecisionService(point, refused=refused, recorded=audit)
    sync = ControlsSync(
        approvals, initial, apply=point.apply_controls, interval_s=settings.controls_refresh_s
    )
    health = EngineHealth(engine, admission, workers=settings.engine_workers, timeout_s=timeout_s)
    metrics.watch_engine(engine.name, lambda: engine.status().up and health.up())
    metrics.pending_approvals.set_function(approvals.pending)
    reloads = BundleReloads(engine, metrics)
    checkpointer = Checkpointer(
        audit,
        settings.checkpoint_key_file,
        settings.checkpoint_origin,
        interval_s=settings.checkpoint_interval_s,
        create_key=settings.profile == "embedded",
    )
    services = Services(
        decisions=decisions,
        events=recorder,
        audit=audit,
        checkpoints=checkpointer,
        controls=OperatorControls(lambda: point.controls, sync, recorder.event),
        approvals=approvals,
        authenticator=build_authenticator(settings),
        refused=refused,
        reloads=reloads,
        readiness=Readiness(engine, audit, health, reloads, decisions),
        registry=metrics.registry,
        engine=engine,
        bundle_source=source,
        max_body_bytes=settings.max_body_bytes,
        max_depth=settings.max_depth,
    )
    return Gate(
        engine=engine,
        audit=audit,
        metrics=metrics,
        decisions=decisions,
        reloads=reloads,
        readiness=services.readiness,
        controls=sync,
        checkpointer=checkpointer,
        services=services,
        settings=settings,
        redis=redis,
        watch_s=settings.bundle_watch_s,
    )


def _refusal_counter(metrics: PrometheusMetrics) -> Callable[[str], None]:
    """Counts one refused caller under its error code."""

    def refused(code: str) -> None:
        metrics.refused_callers.labels(code).inc()

    return refused


def _approval_store(settings: Settings) -> SqlApprovalStore:
    """Approvals and controls live in the audit database: the same SQLite file or PostgreSQL."""
    if settings.audit_dsn.startswith(("postgresql://", "postgres://")):
        return PostgresApprovalStore(settings.audit_dsn)
    return SqliteApprovalStore(sqlite_path(settings.audit_dsn))


def _state_source(settings: Settings, metrics: PrometheusMetrics) -> tuple[StateSource, Any]:
    """In-process counters, or Redis ones shared by replicas when a Redis URL is set."""
    if settings.redis_url is None:
        memory = MemoryState(
            window_s=settings.rate_window_s,
            budget_window_s=settings.budget_window_s,
            recent=settings.session_recent,
        )
        return memory, None
    client = Redis.from_url(settings.redis_url, max_connections=64, socket_timeout=1.0)
    shared = RedisState(
        client,
        prefix=settings.redis_prefix,
        window_s=settings.rate_window_s,
        budget_window_s=settings.budget_window_s,
        recent=settings.session_recent,
        session_ttl_s=settings.session_ttl_s,
        on_error=lambda op: metrics.state_errors.labels(op).inc(),
    )
    return shared, client


def _engine(
    settings: Settings,
    metrics: PrometheusMetrics,
    audit: TreeLog,
    recorder: AuditRecorder,
    registry: RegistryFacts,
) -> tuple[ServingEngine, BundleSource | None]:
    """The configured engine: an OPA server, or a local one serving the bundle directory it
    reads from (the second item; None for OPA, which activates its own bundles)."""
    if settings.engine == "opa":
        opa = OpaEngine(
            settings.opa_url,
            bundle_name=settings.opa_bundle,
            request_timeout_s=max(settings.decision_timeout_ms / 1000, 1.0),
            on_activate=lambda info: metrics.bundle_activated(info.revision, info.digest, "opa"),
            token_file=settings.opa_token_file,
        )
        return opa, None
    runner: EmbeddedEngine | InProcessOpaEngine
    if settings.engine == "opa-inprocess":
        runner = InProcessOpaEngine(workers=settings.engine_workers)
    else:
        runner = EmbeddedEngine(workers=settings.engine_workers)
    source = BundleSource(
        bundle_dir=settings.bundle_dir,
        registry_file=settings.registry_file,
        public_key_file=settings.bundle_public_key_file,
        signature_scope=settings.bundle_signature_scope,
        watch_s=settings.bundle_watch_s,
    )

    def lint(bundle: Bundle) -> None:
        refuse_unchecked(bundle, settings.catalog_dir)

    local = LocalEngine(
        runner, source, lint=lint, floor=audit, events=recorder.event, registry=registry
    )
    return local, source
