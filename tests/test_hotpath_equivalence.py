"""The cheaper per-decision path behaves exactly as the code it replaced.

Each shortcut is checked against what it stands for: the clock against `datetime.isoformat`, the
log chain against structlog's TimeStamper and JSONRenderer, the remembered metric children
against `labels()`, the shared PolicyRef against a fresh one, and the records `decide` writes
against `rfc8785.dumps` on generated requests.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
import structlog
from prometheus_client import generate_latest

from maestro_gate import logs
from maestro_gate.core.clock import iso_microseconds, iso_z
from maestro_gate.core.decision.decisions import PolicyRef, gate_deny, gate_reason, policy_ref
from maestro_gate.core.decision.point import DecisionPoint
from maestro_gate.core.decision.ports import BundleInfo, empty_state
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.core.errors import InvalidRequest
from maestro_gate.core.ledger.chain import MAX_SAFE_INTEGER, leaf_hash
from maestro_gate.metrics import PrometheusMetrics
from tests.fakes import MemoryAuditLog, RecordingMetrics, ScriptedEngine

pytestmark = pytest.mark.anyio

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEADLINE = 0.05


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


async def test_slow_state_source_still_denies_as_unavailable() -> None:
    """A state snapshot past the decision timeout is a deny `GATE.state_unavailable`.

    The snapshot spent the whole deadline, which runs from arrival, so the evaluation is not
    started either: `GATE.engine_timeout` is the other reason.
    """

    class SlowState:
        def reservation(self, request: Any, cost: float) -> Any:
            return None

        async def snapshot(self, request: Any, reservation: Any = None) -> dict[str, Any]:
            await asyncio.sleep(1)
            return empty_state()

        async def observe(self, request: Any, decision: str, reservation: Any = None) -> None:
            return None

        async def release(self, reservation: Any) -> None:
            return None

    point = DecisionPoint(
        ScriptedEngine(), MemoryAuditLog(), RecordingMetrics(), timeout_s=0.01, state=SlowState()
    )
    response = await point.decide(_request({}))
    assert response.decision == "deny"
    reasons = {r.rule: r.message for r in response.reasons}
    assert set(reasons) == {"GATE.state_unavailable", "GATE.engine_timeout"}
    assert reasons["GATE.state_unavailable"] == "the state store could not be read: TimeoutError"


# clock == datetime.isoformat ----------------------------------------------------------------


def _instants(count: int) -> list[int]:
    rng = random.Random(8785)
    edges = [0, 999, 1_000, 999_999_999, 1_000_000_000, 1_767_225_599_999_999_999]
    spread = [rng.randint(-(10**18), 4_102_444_800 * 10**9) for _ in range(count)]
    whole = [n // 10**9 * 10**9 + rng.choice([0, 1, 999, 1_000, 999_999]) for n in spread[:500]]
    return edges + spread + whole


def test_clock_formats_as_datetime_isoformat() -> None:
    """Both forms equal `datetime.isoformat` of the instant floored to the microsecond."""
    for ns in _instants(20_000):
        instant = EPOCH + timedelta(microseconds=ns // 1000)
        assert iso_microseconds(ns) == instant.isoformat(timespec="microseconds")
        assert iso_z(ns) == instant.isoformat().replace("+00:00", "Z")


def test_datetime_now_reads_the_clock_time_ns_reads() -> None:
    """`datetime.now(UTC)` lies between two `time.time_ns()` readings floored to microseconds."""
    for _ in range(2_000):
        before = time.time_ns() // 1000
        now = datetime.now(UTC)
        after = time.time_ns() // 1000
        assert before <= (now - EPOCH) // timedelta(microseconds=1) <= after


# log chain == structlog's TimeStamper and JSONRenderer ------------------------------------


class Opaque:
    """A value JSON cannot encode; the renderer falls back to its repr."""

    def __repr__(self) -> str:
        return "<opaque>"


EVENTS: list[dict[str, Any]] = [
    {"event": "decision", "decision_id": "d-1", "rules": [], "latency_ms": 1.234, "audit_index": 5},
    {"event": "x", "text": 'é ß 中 😀 \u2028 \x00 "q" \\', "n": None, "ok": True, "big": 2**70},
    {"event": "x", "floats": [0.1, 1e21, 1e-7, -0.0, float("nan")], "nested": {"a": [1, {"b": 2}]}},
    {"event": "x", "opaque": Opaque(), "tuple": (1, 2), 3: "int key"},
]


@pytest.mark.parametrize("event", EVENTS)
def test_log_lines_render_as_structlog_did(event: dict[str, Any]) -> None:
    """The configured chain gives structlog's own line: same keys, order and values."""
    reference: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    lines = []
    for chain in (logs.processors(), reference):
        rendered: Any = dict(event)
        for processor in chain:
            rendered = processor(None, "info", rendered)
        lines.append(rendered)
    ours, theirs = (json.loads(line) for line in lines)
    assert list(ours) == list(theirs)
    assert abs(_stamp(ours["timestamp"]) - _stamp(theirs["timestamp"])) < timedelta(seconds=5)
    ours["timestamp"] = theirs["timestamp"]
    assert logs.dumps(ours, default=repr) == json.dumps(theirs, default=repr)
    assert lines[0].replace(_quoted(lines[0]), _quoted(lines[1])) == lines[1]


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _quoted(line: str) -> str:
    return '"timestamp": "' + json.loads(line)["timestamp"] + '"'


@pytest.mark.parametrize("event", EVENTS)
def test_dumps_equals_json_dumps(event: dict[str, Any]) -> None:
    """`logs.dumps` is `json.dumps` with the same fallback, byte for byte."""
    assert logs.dumps(event, default=repr) == json.dumps(event, default=repr)


# metrics: remembered children == labels() ---------------------------------------------------


def test_metrics_series_equal_direct_labels_calls() -> None:
    """Decisions, engine calls and appends give the exposition that `labels()` calls give."""
    ours, reference = PrometheusMetrics(), PrometheusMetrics()
    rng = random.Random(3)
    for _ in range(300):
        kind = rng.choice(["agent_action", "data_movement", "delegation"])
        decision = rng.choice(["allow", "deny", "require_hitl"])
        mode = rng.choice(["enforce", "shadow"])
        rules = sorted(rng.sample(["L3.a", "L6.b", "GATE.engine_error", "CL.c"], rng.randint(0, 3)))
        layers = {layer: rng.choice(["allow", "deny"]) for layer in rng.sample(["l1", "l3"], 2)}
        seconds, error = rng.random() / 100, rng.choice([None, "timeout", "error"])
        ours.decision(kind, decision, mode, seconds, rules, layers)
        ours.engine("embedded", seconds, error)
        ours.audit_append(seconds, failed=error == "error")
        reference.decisions.labels(kind, decision, mode).inc()
        reference.decision_latency.labels(kind).observe(seconds)
        for rule in rules:
            reference.rule_hits.labels(rule).inc()
            if rule.startswith("GATE."):
                reference.fail_closed.labels(rule[5:]).inc()
        for layer, verdict in layers.items():
            reference.layer_verdicts.labels(layer, verdict).inc()
        reference.engine_latency.labels("embedded").observe(seconds)
        if error is not None:
            reference.engine_errors.labels("embedded", error).inc()
        if error == "error":
            reference.audit_failures.inc()
        else:
            reference.audit_latency.observe(seconds)
            reference.audit_records.inc()
    assert _exposition(ours) == _exposition(reference)


def _exposition(metrics: PrometheusMetrics) -> list[str]:
    """The exposition without `*_created` samples, which hold each metric's creation time."""
    lines = generate_latest(metrics.registry).decode().splitlines()
    return [line for line in lines if "_created" not in line]


# decisions: the shared PolicyRef == a fresh one ---------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "decision_id"),
    [
        (None, None),
        (BundleInfo("r1", "sha256:1", "2026-01-01T00:00:00.000+00:00"), None),
        (BundleInfo("r1", "sha256:1", "2026-01-01T00:00:00.000+00:00"), "opa-42"),
    ],
)
def test_policy_ref_equals_a_fresh_model(
    bundle: BundleInfo | None, decision_id: str | None
) -> None:
    """Same fields and dump as the PolicyRef built per decision before."""
    fresh = (
        PolicyRef(revision="none", digest="none", engine="embedded")
        if bundle is None
        else PolicyRef(
            revision=bundle.revision,
            digest=bundle.digest,
            engine="embedded",
            engine_decision_id=decision_id,
        )
    )
    made = policy_ref(bundle, "embedded", decision_id)
    assert made == fresh
    assert made.model_dump_json(exclude_none=True) == fresh.model_dump_json(exclude_none=True)
    assert (policy_ref(bundle, "embedded", decision_id) is made) is (decision_id is None)


def test_gate_deny_is_a_deny_with_one_gate_reason() -> None:
    """`gate_deny` builds the deny the decision point built itself before."""
    assert gate_deny("engine_error", "boom").model_dump() == {
        "decision": "deny",
        "reasons": [gate_reason("engine_error", "boom", ["T24"]).model_dump()],
        "obligations": [],
        "layers": {},
        "approvers_required": 0,
    }
    assert gate_deny("approval_used", "used", ["T7"]).reasons[0].threats == ["T7"]


# records written by decide == rfc8785 ------------------------------------------------------

KEYS = ["a", "é", "\ue000", "\uffff", "😀", "\U0001f600x", "中文", "\u2028", "\x7f", ""]


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "null"] + (["dict", "list"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice(KEYS) for _ in range(rng.randint(0, 3)))
    if kind == "int":
        return rng.choice([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**53, rng.randint(-99, 99)])
    if kind == "float":
        return rng.choice([0.5, -0.0, 1.0, 1e21, 1e-7, 123.456, 5e-324, rng.uniform(-1e9, 1e9)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    size = rng.randint(0, 4)
    return {rng.choice(KEYS) + str(i): _json_value(rng, depth + 1) for i in range(size)}


def _request(arguments: dict[str, Any]) -> Any:
    return REQUEST_ADAPTER.validate_python(
        {
            "kind": "agent_action",
            "subject": {"id": "spiffe://corp.example/agent/analyst"},
            "action": "web.search",
            "arguments": arguments,
            "context": {"trace_id": "t-1", "attributes": {"😀": "中", "\ue000": 1}},
        }
    )


@pytest.mark.parametrize("mask", [[], ["/arguments/a0"]])
async def test_decided_records_are_rfc8785_bytes(mask: list[str]) -> None:
    """Every record `decide` writes is `rfc8785.dumps` of itself; unrepresentable input is 400."""
    rng = random.Random(len(mask))
    audit = MemoryAuditLog()
    metrics = PrometheusMetrics()
    point = DecisionPoint(ScriptedEngine(), audit, metrics, mask_pointers=mask)
    refused = 0
    for _ in range(400):
        request = _request({f"a{i}": _json_value(rng) for i in range(rng.randint(0, 4))})
        document = request.model_dump(mode="json", exclude_none=True)
        try:
            rfc8785.dumps(document)
        except ValueError:
            refused += 1
            with pytest.raises(InvalidRequest):
                await point.decide(request)
            continue
        response = await point.decide(request)
        record = audit.records[-1]
        data = rfc8785.dumps(record)
        assert response.audit.leaf_hash == leaf_hash(data).hex()
        assert json.loads(data)["input_sha256"] == record["input_sha256"]
        assert record["timestamp"] == _stamp(record["timestamp"]).isoformat(timespec="microseconds")
    assert 0 < refused < 400
