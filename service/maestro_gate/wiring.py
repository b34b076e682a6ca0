"""The composition root: `build(settings)` makes every part; `Gate.start()`/`close()` run them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import prometheus_client
import structlog
from redis.asyncio import Redis

from maestro_gate.approvals.postgres import PostgresApprovalStore
from maestro_gate.approvals.sql import SqlApprovalStore
from maestro_gate.approvals.sqlite import SqliteApprovalStore
from maestro_gate.approvals.sync import ControlsSync
from maestro_gate.audit.backends import open_log
from maestro_gate.audit.checkpoints import Checkpointer
from maestro_gate.audit.store import TreeLog
from maestro_gate.auth.authenticator import Authenticator, build_authenticator
from maestro_gate.authoring.check import refuse_unchecked
from maestro_gate.config import Settings
from maestro_gate.core.admission import Admission, WorkBudget
from maestro_gate.core.controls import Controls
from maestro_gate.core.errors import AuditUnavailable, BundleError, EngineError
from maestro_gate.core.health import EngineHealth
from maestro_gate.core.point import DecisionPoint
from maestro_gate.core.ports import BundleInfo, StateSource
from maestro_gate.engine import patches, revision
from maestro_gate.engine.bundle import Bundle, read_bundle
from maestro_gate.engine.contract import check_contract
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.inprocess import InProcessOpaEngine
from maestro_gate.engine.opa import OpaEngine
from maestro_gate.engine.watch import BundleWatcher, fingerprint
from maestro_gate.metrics import PrometheusMetrics
from maestro_gate.state.memory import MemoryState
from maestro_gate.state.redis import RedisState

# All satisfy core.ports.PolicyEngine; they differ in how a bundle becomes active: the embedded
# engine and OPA's engine in process compile the bundle directory here, an OPA server activates
# its own and is asked what it runs.
LocalEngine = EmbeddedEngine | InProcessOpaEngine
GateEngine = LocalEngine | OpaEngine


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
    audit: TreeLog
    metrics: PrometheusMetrics
    point: DecisionPoint
    last_reload_error: str | None = None
    _log: Any = field(default_factory=lambda: structlog.get_logger("maestro_gate"))
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    watcher: BundleWatcher | None = field(default=None, repr=False)
    auth: Authenticator = field(default_factory=Authenticator)
    controls: ControlsSync | None = field(default=None, repr=False)
    redis: Any = field(default=None, repr=False)
    agent_classes: dict[str, str] = field(default_factory=dict, repr=False)
    tool_costs: dict[str, object] = field(default_factory=dict, repr=False)
    checkpointer: Checkpointer | None = field(default=None, repr=False)
    engine_health: EngineHealth | None = field(default=None, repr=False)

    def agent_class(self, agent_id: str) -> str | None:
        """The registry class of an agent in the active (embedded) bundle, for emergency stops."""
        return self.agent_classes.get(agent_id)

    def tool_cost(self, tool: str) -> object:
        """The registry `cost` of a tool in the active local bundle (None for an uncosted one)."""
        return self.tool_costs.get(tool)

    async def start(self) -> None:
        """Open the audit log and activate the configured bundle (a failure leaves none active)."""
        self.audit.start()
        if self.checkpointer is not None:
            await self.checkpointer.start()
        try:
            self.metrics.audit_records.set(self.audit.count())
        except Exception as exc:  # an unreadable store: /ready says so, appends answer 503
            self._log.error("audit_unreadable", error=str(exc))
        if self.controls is not None:
            await self.controls.start()
        if isinstance(self.engine, OpaEngine):
            await self.engine.open()
        watched = [self.settings.bundle_dir, self.settings.registry_file]
        watching = self.settings.bundle_watch_s > 0 and not isinstance(self.engine, OpaEngine)
        seen = await asyncio.to_thread(fingerprint, *watched) if watching else ""
        try:
            await self.reload()
        except (BundleError, EngineError, AuditUnavailable) as exc:
            self._log.error(
                "bundle_refused", error=exc.message, bundle_dir=str(self.settings.bundle_dir)
            )
        if watching:
            self.watcher = BundleWatcher(watched, self.settings.bundle_watch_s, self.reload_bundle)
            self.watcher.start(seen)

    async def reload_bundle(
        self, *, allow_downgrade: bool = False, by: str | None = None
    ) -> BundleInfo:
        """`reload`, one at a time: the watcher and the admin endpoint never race each other."""
        async with self._reload_lock:
            return await self.reload(allow_downgrade=allow_downgrade, by=by)

    async def reload(self, *, allow_downgrade: bool = False, by: str | None = None) -> BundleInfo:
        """Read, check and activate the bundle; on failure keep the active one and raise.

        With signing on, a bundle not newer than the newest one the store accepted is refused
        (engine/revision.py) unless `allow_downgrade`; an allowed downgrade is audited
        (`bundle_downgrade_allowed`, naming `by`) before it is activated. A store that cannot
        be read or written refuses the bundle with AuditUnavailable.
        """
        try:
            if isinstance(self.engine, OpaEngine):
                info = await self.engine.refresh()
            else:
                bundle = await asyncio.to_thread(self._checked)
                verdict = await self._judge(bundle, allow_downgrade)
                if verdict is not None and verdict.downgrade:
                    await self.point.event(
                        "bundle_downgrade_allowed", None, _downgrade_detail(verdict, by)
                    )
                info = await asyncio.to_thread(self._activate, self.engine, bundle, verdict)
        except BundleError as exc:
            self.last_reload_error = exc.message
            self.metrics.bundle_failures.inc()
            raise
        except (EngineError, AuditUnavailable) as exc:
            self.last_reload_error = exc.message
            raise
        self.last_reload_error = None
        self.metrics.bundle_activated(info.revision, info.digest, self.engine.name)
        self._log.info(
            "bundle_activated",
            revision=info.revision,
            digest=info.digest,
            engine=self.engine.name,
            engine_patches=patches.status() if self.engine.name == "embedded" else None,
        )
        return info

    def _checked(self) -> Bundle:
        """The configured bundle, read, verified, linted and held to the decision contract."""
        settings = self.settings
        bundle = read_bundle(
            settings.bundle_dir,
            settings.registry_file,
            public_key=_read_key(settings.bundle_public_key_file),
            scope=settings.bundle_signature_scope,
        )
        # The contract compiles and evaluates the bundle on a probe engine while `policy
        # check` lints it; with two cores this hides most of its cost in the reload time.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bundle-contract") as probe:
            contract = probe.submit(check_contract, bundle, self.engine.name)
            refuse_unchecked(bundle, settings.catalog_dir)
            contract.result()
        return bundle

    async def _judge(self, bundle: Bundle, allow_downgrade: bool) -> revision.Verdict | None:
        """With signing on, the candidate against the store's floor (None with signing off)."""
        if self.settings.bundle_public_key_file is None:
            return None
        floor = await asyncio.to_thread(self.audit.accepted_revision)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return revision.judge(bundle, floor, now, allow_downgrade=allow_downgrade)

    def _activate(
        self, engine: LocalEngine, bundle: Bundle, verdict: revision.Verdict | None
    ) -> BundleInfo:
        """Raise the floor (when signing is on), then activate; a refused load restores it."""
        raised = verdict is not None and verdict.raises_floor
        if verdict is not None and raised:
            self.audit.accept_revision(verdict.candidate)
        try:
            info = engine.load(bundle)
        except BaseException:
            if verdict is not None and raised and verdict.floor is not None:
                self.audit.accept_revision(verdict.floor)
            raise
        self.agent_classes = agent_classes(bundle.data)
        self.tool_costs = tool_costs(bundle.data)
        return info

    async def close(self) -> None:
        """Stop the bundle watcher and the engine workers, and drain the audit writer."""
        if self.watcher is not None:
            await self.watcher.stop()
        if isinstance(self.engine, OpaEngine):
            await self.engine.close()
        else:
            self.engine.close()
        if self.controls is not None:
            await self.controls.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.checkpointer is not None:
            await self.checkpointer.close()
        await asyncio.to_thread(self.audit.close)


def build(settings: Settings) -> Gate:
    """Make the engine, audit log, metrics and decision point that `settings` describe."""
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = PrometheusMetrics()
    engine, loaded = _engine(settings, metrics)
    audit = open_log(settings.audit_dsn, synchronous=settings.audit_synchronous)
    approvals = _approval_store(settings)
    state, redis = _state_source(settings, metrics)
    initial = Controls(mode=settings.mode, shadow_layers=frozenset(settings.shadow_layers))
    point = DecisionPoint(
        engine,
        audit,
        metrics,
        timeout_s=settings.decision_timeout_ms / 1000,
        mode=settings.mode,
        mask_pointers=settings.audit_mask,
        state=state,
        approvals=approvals,
        approval_ttl_s=settings.approval_ttl_s,
        controls=initial,
        admission=Admission(
            per_caller=settings.caller_evaluations,
            work=(
                WorkBudget(settings.caller_work_rate, settings.caller_work_burst)
                if settings.caller_work_rate
                else None
            ),
        ),
        max_weight=settings.max_request_weight,
    )
    controls = ControlsSync(
        approvals,
        initial,
        apply=lambda c: setattr(point, "controls", c),
        interval_s=settings.controls_refresh_s,
    )
    gate = Gate(
        settings=settings,
        engine=engine,
        audit=audit,
        metrics=metrics,
        point=point,
        auth=build_authenticator(settings),
        controls=controls,
        redis=redis,
        checkpointer=Checkpointer(
            audit,
            settings.checkpoint_key_file,
            settings.checkpoint_origin,
            interval_s=settings.checkpoint_interval_s,
            create_key=settings.profile == "embedded",
        ),
    )
    point.agent_class = gate.agent_class
    point.tool_cost = gate.tool_cost
    gate.engine_health = health = EngineHealth(
        engine,
        point.admission,
        workers=settings.engine_workers,
        timeout_s=settings.decision_timeout_ms / 1000,
    )
    metrics.watch_engine(engine.name, lambda: loaded() and health.up())
    metrics.pending_approvals.set_function(approvals.pending)
    return gate


def agent_classes(data: dict[str, Any]) -> dict[str, str]:
    """Agent id to registry `class`, from a bundle's data document."""
    agents = data.get("maestro", {}).get("registry", {}).get("agents", {})
    if not isinstance(agents, dict):
        return {}
    return {
        agent: str(entry["class"])
        for agent, entry in agents.items()
        if isinstance(entry, dict) and entry.get("class") is not None
    }


def tool_costs(data: dict[str, Any]) -> dict[str, object]:
    """Tool name to registry `cost`, from a bundle's data document (L6.budget_exhausted's)."""
    tools = data.get("maestro", {}).get("registry", {}).get("tools", {})
    if not isinstance(tools, dict):
        return {}
    return {
        name: entry["cost"]
        for name, entry in tools.items()
        if isinstance(entry, dict) and "cost" in entry
    }


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
    settings: Settings, metrics: PrometheusMetrics
) -> tuple[GateEngine, Callable[[], bool]]:
    """The configured engine, and whether it is loaded (or, for OPA, reachable) now."""
    if settings.engine == "opa":
        opa = OpaEngine(
            settings.opa_url,
            bundle_name=settings.opa_bundle,
            request_timeout_s=max(settings.decision_timeout_ms / 1000, 1.0),
            on_activate=lambda info: metrics.bundle_activated(info.revision, info.digest, "opa"),
            token_file=settings.opa_token_file,
        )
        return opa, lambda: opa.reachable
    if settings.engine == "opa-inprocess":
        inprocess = InProcessOpaEngine(workers=settings.engine_workers)
        return inprocess, lambda: inprocess.active_bundle() is not None
    embedded = EmbeddedEngine(workers=settings.engine_workers)
    return embedded, lambda: embedded.active_bundle() is not None


def _downgrade_detail(verdict: revision.Verdict, by: str | None) -> dict[str, Any]:
    """The `bundle_downgrade_allowed` event: from which accepted bundle to which, and who."""
    floor = verdict.floor
    return {
        "from": {"revision": floor.revision, "digest": floor.digest} if floor else None,
        "to": {"revision": verdict.candidate.revision, "digest": verdict.candidate.digest},
        "by": by,
    }


def _read_key(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read the bundle public key {path}: {exc.strerror}") from exc
