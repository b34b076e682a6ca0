"""Prometheus metrics (`maestro_*`), on a registry owned by the app, never the global one.

No label carries an agent id: agent ids are unbounded and would explode cardinality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_Metric = TypeVar("_Metric", Counter, Histogram)


class _Series(Generic[_Metric]):
    """`metric.labels(*values)`, looked up once per label values and remembered.

    `labels()` checks its arguments, converts each value and takes a lock on every call, about
    1 µs; a decision makes a dozen of them. The label values are bounded (kinds, verdicts, modes,
    engines, layers and the bundle's rule ids) and the registry keeps one child per value tuple
    anyway, so remembering them adds references, not series. Only for metrics that are never
    cleared: a remembered child of a cleared metric would count where no scrape sees it.
    """

    def __init__(self, metric: _Metric) -> None:
        self._labels: Callable[..., _Metric] = metric.labels
        self._children: dict[tuple[str, ...], _Metric] = {}

    def __call__(self, *values: str) -> _Metric:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._labels(*values)
        return child


class PrometheusMetrics:
    """DecisionMetrics and the operational gauges, registered on one CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "maestro_decisions", "Decisions made.", ["kind", "decision", "mode"], registry=r
        )
        self.decision_latency = Histogram(
            "maestro_decision_latency_seconds",
            "Time to decide, audit included.",
            ["kind"],
            buckets=_LATENCY,
            registry=r,
        )
        self.engine_latency = Histogram(
            "maestro_engine_latency_seconds",
            "Policy evaluation time.",
            ["engine"],
            buckets=_LATENCY,
            registry=r,
        )
        self.engine_up = Gauge(
            "maestro_engine_up",
            "1 when the policy engine can answer (OPA: its last call or health check succeeded).",
            ["engine"],
            registry=r,
        )
        self.engine_errors = Counter(
            "maestro_engine_errors", "Failed evaluations.", ["engine", "error"], registry=r
        )
        self.fail_closed = Counter(
            "maestro_fail_closed",
            "Denials the gate made because it could not evaluate.",
            ["reason"],
            registry=r,
        )
        self.layer_verdicts = Counter(
            "maestro_layer_verdicts",
            "Verdicts per MAESTRO layer.",
            ["layer", "verdict"],
            registry=r,
        )
        self.rule_hits = Counter(
            "maestro_rule_hits", "Reasons cited, by rule.", ["rule"], registry=r
        )
        self.audit_latency = Histogram(
            "maestro_audit_append_latency_seconds",
            "Time to make one record durable.",
            buckets=_LATENCY,
            registry=r,
        )
        self.audit_failures = Counter(
            "maestro_audit_append_failures", "Appends that failed.", registry=r
        )
        self.audit_records = Gauge("maestro_audit_records", "Records in the audit log.", registry=r)
        self.bundle_info = Gauge(
            "maestro_bundle_info",
            "The active bundle (value 1).",
            ["revision", "digest", "engine"],
            registry=r,
        )
        self.bundle_failures = Counter(
            "maestro_bundle_activation_failures", "Bundles refused at load.", registry=r
        )
        self.pending_approvals = Gauge(
            "maestro_pending_approvals", "Approvals waiting for humans.", registry=r
        )
        self.refused_callers = Counter(
            "maestro_refused_callers", "Callers refused, by code.", ["code"], registry=r
        )
        self.state_errors = Counter(
            "maestro_state_errors",
            "State store calls that failed (snapshot: the decision was denied; observe: lost).",
            ["op"],
            registry=r,
        )
        self._decisions = _Series(self.decisions)
        self._decision_latency = _Series(self.decision_latency)
        self._engine_latency = _Series(self.engine_latency)
        self._engine_errors = _Series(self.engine_errors)
        self._fail_closed = _Series(self.fail_closed)
        self._layer_verdicts = _Series(self.layer_verdicts)
        self._rule_hits = _Series(self.rule_hits)

    def decision(
        self,
        kind: str,
        decision: str,
        mode: str,
        seconds: float,
        rules: list[str],
        layers: Mapping[str, str],
    ) -> None:
        """Count one decision, its latency, its rules and its layer verdicts."""
        self._decisions(kind, decision, mode).inc()
        self._decision_latency(kind).observe(seconds)
        for rule in rules:
            self._rule_hits(rule).inc()
            if rule.startswith("GATE."):
                self._fail_closed(rule[5:]).inc()
        for layer, verdict in layers.items():
            self._layer_verdicts(layer, verdict).inc()

    def engine(self, engine: str, seconds: float, error: str | None) -> None:
        """Record one evaluation."""
        self._engine_latency(engine).observe(seconds)
        if error is not None:
            self._engine_errors(engine, error).inc()

    def audit_append(self, seconds: float, failed: bool) -> None:
        """Record one append."""
        if failed:
            self.audit_failures.inc()
        else:
            self.audit_latency.observe(seconds)
            self.audit_records.inc()

    def watch_engine(self, engine: str, up: Callable[[], bool]) -> None:
        """Read `maestro_engine_up{engine}` from `up()` at each scrape."""
        self.engine_up.labels(engine).set_function(lambda: 1.0 if up() else 0.0)

    def bundle_activated(self, revision: str, digest: str, engine: str) -> None:
        """Show the newly active bundle as the only one."""
        self.bundle_info.clear()
        self.bundle_info.labels(revision, digest, engine).set(1)
