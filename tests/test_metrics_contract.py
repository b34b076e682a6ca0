"""The metric names, types and label sets on /metrics are a public contract (DESIGN §8).

Changing one breaks dashboards and alerts (deploy/prometheus/alerts.yml): update EXPECTED here,
the README's metrics table and the alert rules together.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from maestro_gate.metrics import PrometheusMetrics

FAMILIES = {
    ("maestro_audit_append_failures", "counter"),
    ("maestro_audit_append_latency_seconds", "histogram"),
    ("maestro_audit_records", "gauge"),
    ("maestro_bundle_activation_failures", "counter"),
    ("maestro_bundle_info", "gauge"),
    ("maestro_decision_latency_seconds", "histogram"),
    ("maestro_decisions", "counter"),
    ("maestro_engine_errors", "counter"),
    ("maestro_engine_latency_seconds", "histogram"),
    ("maestro_engine_up", "gauge"),
    ("maestro_fail_closed", "counter"),
    ("maestro_layer_verdicts", "counter"),
    ("maestro_pending_approvals", "gauge"),
    ("maestro_refused_callers", "counter"),
    ("maestro_rule_hits", "counter"),
    ("maestro_state_errors", "counter"),
}

SAMPLES = {
    ("maestro_audit_append_failures_total", ()),
    ("maestro_audit_append_latency_seconds_bucket", ("le",)),
    ("maestro_audit_append_latency_seconds_count", ()),
    ("maestro_audit_append_latency_seconds_sum", ()),
    ("maestro_audit_records", ()),
    ("maestro_bundle_activation_failures_total", ()),
    ("maestro_bundle_info", ("digest", "engine", "revision")),
    ("maestro_decision_latency_seconds_bucket", ("kind", "le")),
    ("maestro_decision_latency_seconds_count", ("kind",)),
    ("maestro_decision_latency_seconds_sum", ("kind",)),
    ("maestro_decisions_total", ("decision", "kind", "mode")),
    ("maestro_engine_errors_total", ("engine", "error")),
    ("maestro_engine_latency_seconds_bucket", ("engine", "le")),
    ("maestro_engine_latency_seconds_count", ("engine",)),
    ("maestro_engine_latency_seconds_sum", ("engine",)),
    ("maestro_engine_up", ("engine",)),
    ("maestro_fail_closed_total", ("reason",)),
    ("maestro_layer_verdicts_total", ("layer", "verdict")),
    ("maestro_pending_approvals", ()),
    ("maestro_refused_callers_total", ("code",)),
    ("maestro_rule_hits_total", ("rule",)),
    ("maestro_state_errors_total", ("op",)),
}

AGENT_LABELS = {"agent", "agent_id", "subject", "subject_id", "delegatee", "session_id"}


def exercise(metrics: PrometheusMetrics) -> None:
    """Touch every metric once through its public interface, so each labelled one has a series."""
    metrics.decision(
        "agent_action",
        "deny",
        "enforce",
        0.001,
        ["L3.tool_not_allowlisted", "GATE.engine_error"],
        {"l3_agent_frameworks": "deny"},
    )
    metrics.engine("embedded", 0.001, "timeout")
    metrics.audit_append(0.001, failed=False)
    metrics.audit_append(0.001, failed=True)
    metrics.bundle_failures.inc()
    metrics.pending_approvals.set(0)
    metrics.refused_callers.labels("unauthorized").inc()
    metrics.state_errors.labels("snapshot").inc()


def scrape(client: TestClient) -> tuple[set[tuple[str, str]], set[tuple[str, tuple[str, ...]]]]:
    """The (family, type) and (sample, label names) pairs /metrics serves."""
    families: set[tuple[str, str]] = set()
    samples: set[tuple[str, tuple[str, ...]]] = set()
    for family in text_string_to_metric_families(client.get("/metrics").text):
        families.add((family.name, family.type))
        samples.update((s.name, tuple(sorted(s.labels))) for s in family.samples)
    return families, samples


def test_metric_names_types_and_labels_match_the_contract(client: TestClient) -> None:
    """/metrics serves exactly the documented maestro_* families, sample names and label sets."""
    exercise(client.app.state.gate.metrics)  # type: ignore[attr-defined]
    families, samples = scrape(client)
    assert families == FAMILIES
    assert samples == SAMPLES


def test_no_metric_is_labelled_by_agent(client: TestClient) -> None:
    """No label names an agent, subject or session: their number is unbounded."""
    exercise(client.app.state.gate.metrics)  # type: ignore[attr-defined]
    _, samples = scrape(client)
    assert not {label for _, labels in samples for label in labels} & AGENT_LABELS


def test_engine_up_and_bundle_info_describe_the_running_engine(client: TestClient) -> None:
    """With a bundle active, maestro_engine_up is 1 and bundle_info names revision and engine."""
    text = client.get("/metrics").text
    assert 'maestro_engine_up{engine="embedded"} 1.0' in text
    assert 'engine="embedded",revision="test-1"} 1.0' in text
