"""What the console shows of audit records: log rows, a decision's parts, the filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from maestro_gate.audit.facets import LogFilter
from maestro_gate.core.catalog.model import Catalog
from maestro_gate.core.decision.ports import AuditEntry

FILTERS = (
    "since",
    "until",
    "agent",
    "kind",
    "type",
    "decision",
    "rule",
    "layer",
    "threat",
    "trace_id",
)
TIME_FILTERS = ("since", "until")
MAX_FILTER = 512


class FilterError(ValueError):
    """A filter value the console refuses (a bad time, an oversized value)."""


def parse_filter(query: Mapping[str, str]) -> tuple[LogFilter, dict[str, str]]:
    """The LogFilter of the log page's query string, and the values to show back in the form.

    Times are ISO 8601; one without an offset is UTC. Empty values mean "any".
    """
    shown: dict[str, str] = {}
    values: dict[str, str] = {}
    for name in FILTERS:
        raw = (query.get(name) or "").strip()
        if not raw:
            continue
        if len(raw) > MAX_FILTER:
            raise FilterError(f"the {name} filter is longer than {MAX_FILTER} characters")
        shown[name] = raw
        values[name] = utc_text(raw, name) if name in TIME_FILTERS else raw
    return LogFilter(**values), shown


def utc_text(raw: str, name: str) -> str:
    """An ISO 8601 time as the records write it (UTC, `+00:00`), for text comparison."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{name} is not an ISO 8601 time: {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def log_row(entry: AuditEntry) -> dict[str, Any]:
    """One row of the log table."""
    record = orjson.loads(entry.record)
    decision = record.get("type") == "decision"
    document = record.get("input") if decision else None
    return {
        "index": entry.idx,
        "timestamp": record.get("timestamp"),
        "type": record.get("type"),
        "kind": record.get("kind"),
        "subject": record.get("subject"),
        "action": _action(document) if isinstance(document, dict) else None,
        "decision": record.get("decision"),
        "rules": record.get("rules") or [],
        "decision_id": record.get("decision_id"),
        "trace_id": record.get("trace_id"),
    }


def _action(document: dict[str, Any]) -> str | None:
    """A one-line summary of what was asked: the action, the data movement or the delegation."""
    if isinstance(document.get("action"), str):
        return str(document["action"])
    for key in ("operation", "source", "destination", "delegate"):
        value = document.get(key)
        if isinstance(value, str):
            return f"{key} {value}"
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return f"{key} {value['id']}"
    return None


def decision_view(entry: AuditEntry, catalog: Catalog | None) -> dict[str, Any]:
    """A decision (or event) record's parts as its page shows them."""
    record = orjson.loads(entry.record)
    result = record.get("result")
    if not isinstance(result, dict):
        result = {}
    reasons = [r for r in result.get("reasons") or [] if isinstance(r, dict)]
    return {
        "record": record,
        "raw": entry.record.decode(),
        "index": entry.idx,
        "leaf_hash": entry.leaf_hash.hex(),
        "is_decision": record.get("type") == "decision",
        "reasons": [_reason(r, catalog) for r in reasons],
        "layers": _layers(result.get("layers"), catalog),
        "obligations": result.get("obligations") or [],
        "approvers_required": result.get("approvers_required"),
        "policy": record.get("policy") or {},
    }


def _reason(reason: dict[str, Any], catalog: Catalog | None) -> dict[str, Any]:
    layer_id = str(reason.get("layer"))
    layer = catalog.layer(layer_id) if catalog else None
    threats = []
    for threat_id in reason.get("threats") or []:
        threat = catalog.threat(str(threat_id)) if catalog else None
        threats.append({"id": threat_id, "name": threat.name if threat else None})
    return {
        "rule": reason.get("rule"),
        "message": reason.get("message"),
        "layer": layer_id,
        "layer_name": f"{layer.code} {layer.name}" if layer else layer_id,
        "threats": threats,
        "approvers": reason.get("approvers"),
    }


def _layers(layers: Any, catalog: Catalog | None) -> list[dict[str, Any]]:
    if not isinstance(layers, dict):
        return []
    order = [layer.id for layer in catalog.layers] if catalog else sorted(layers)
    names = {layer.id: f"{layer.code} {layer.name}" for layer in catalog.layers} if catalog else {}
    ordered = [i for i in order if i in layers] + sorted(set(layers) - set(order))
    return [{"id": i, "name": names.get(i, i), "verdict": layers[i]} for i in ordered]
