"""Audit record bodies (schema versions 1 and 2), JSON-pointer masking, and the export line format.

Schema 2 is schema 1 plus `state`: the `input.state` the policy saw (session history, counters,
approval, emergency stops, caller, clock), masked like the input, so a decision can be
re-evaluated from its record (`maestro-gate posture replay`). A decision record written without
a state, and every event record, is schema 1, byte for byte as before.

The log adds `index` and `prev` when it seals a body (`chain.seal`); everything else is fixed
here, before the append, so the bytes are the same whichever store holds them. The record schema
is published as JSON Schema in `record.schema.json` beside this module.
"""

from __future__ import annotations

import copy
from typing import Any

from maestro_gate.core.ledger.chain import SCHEMA_VERSION

MASK = "***"
STATE_SCHEMA_VERSION = 2
"""The schema of a decision record that carries the state the policy saw."""


def decision_record(
    *,
    decision_id: str,
    timestamp: str,
    kind: str,
    subject: str,
    decision: str,
    result: dict[str, Any],
    policy: dict[str, Any],
    mode: str,
    approval: dict[str, Any] | None,
    masked_input: dict[str, Any],
    input_sha256: str,
    trace_id: str | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a decision record, with the rule ids lifted out for search.

    With `state` (already masked) the record is schema 2 and carries it; without, schema 1.
    """
    body = {
        "schema": SCHEMA_VERSION if state is None else STATE_SCHEMA_VERSION,
        "type": "decision",
        "timestamp": timestamp,
        "decision_id": decision_id,
        "kind": kind,
        "subject": subject,
        "decision": decision,
        "rules": sorted({r["rule"] for r in result.get("reasons", [])}),
        "result": result,
        "policy": policy,
        "mode": mode,
        "approval": approval,
        "trace_id": trace_id,
        "input": masked_input,
        "input_sha256": input_sha256,
    }
    if state is not None:
        body["state"] = state
    return body


def event_record(
    *, event_id: str, timestamp: str, type: str, subject: str | None, detail: dict[str, Any]
) -> dict[str, Any]:
    """The body of a non-decision record: approvals, admin changes, refused callers."""
    return {
        "schema": SCHEMA_VERSION,
        "type": type,
        "timestamp": timestamp,
        "decision_id": event_id,
        "subject": subject,
        "detail": detail,
    }


def mask(document: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    """A copy of `document` with the value at each RFC 6901 pointer replaced by `***`."""
    if not pointers:
        return document
    masked = copy.deepcopy(document)
    for pointer in pointers:
        _mask_one(masked, pointer)
    return masked


def mask_state(state: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    """The policy's `input.state` as a schema-2 record keeps it: masked, and canonical.

    Mask pointers address the whole policy input (the request document plus `state`), so
    `/state/caller/principal` masks the caller's name and `/arguments/...` leaves state alone.
    `now_ns` (nanoseconds since the epoch, past RFC 8785's 2**53) is kept as its decimal
    string; `replayable_state` turns it back into the integer the policy saw.
    """
    within = [p[len("/state") :] for p in pointers if p.startswith("/state/")]
    kept = mask(state, within)
    if isinstance(kept.get("now_ns"), int):
        kept = {**kept, "now_ns": str(kept["now_ns"])}
    return kept


def replayable_state(recorded: dict[str, Any]) -> dict[str, Any]:
    """The `input.state` a schema-2 record kept, as the policy saw it (`now_ns` an integer)."""
    now = recorded.get("now_ns")
    if isinstance(now, str) and now.isdigit():
        return {**recorded, "now_ns": int(now)}
    return recorded


def _mask_one(node: Any, pointer: str) -> None:
    if not pointer.startswith("/"):
        return
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    for token in tokens[:-1]:
        node = _child(node, token)
        if node is None:
            return
    last = tokens[-1]
    if isinstance(node, dict) and last in node:
        node[last] = MASK
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = MASK


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


DECISION_PATH = "maestro/decision/result"
OPA_FIELDS = ("decision_id", "path", "input", "result", "timestamp", "bundles", "labels")


def opa_event(record: dict[str, Any]) -> dict[str, Any]:
    """The OPA decision-log fields of a record, derived from it alone.

    A decision record maps to `path` maestro/decision/result with the (masked) input and the
    policy result; any other record type maps to `maestro/event/<type>` with its detail. The
    input of a schema-2 record is the policy's whole input: the request and its `state`.
    """
    kind = record.get("type")
    decision = kind == "decision"
    policy = record.get("policy") or {}
    labels = {"schema": str(record.get("schema")), "type": str(kind)}
    if decision:
        labels["mode"] = str(record.get("mode"))
    return {
        "decision_id": record.get("decision_id"),
        "path": DECISION_PATH if decision else f"maestro/event/{kind}",
        "input": _policy_input(record) if decision else None,
        "result": record.get("result") if decision else record.get("detail"),
        "timestamp": record.get("timestamp"),
        "bundles": {"maestro": {"revision": policy.get("revision")}} if decision else {},
        "labels": labels,
    }


def export_line(record: dict[str, Any], data: bytes, leaf: bytes) -> dict[str, Any]:
    """One export line: OPA's decision-log fields plus `index`, `prev`, `leaf_hash`, `record`.

    `record` is the exact canonical record text, so a verifier recomputes the leaf from it.
    """
    return {
        **opa_event(record),
        "index": record.get("index"),
        "prev": record.get("prev"),
        "leaf_hash": leaf.hex(),
        "record": data.decode(),
    }


def _policy_input(record: dict[str, Any]) -> Any:
    """The input the policy was given, as far as the record holds it (masked)."""
    recorded = record.get("input")
    if "state" not in record or not isinstance(recorded, dict):
        return recorded
    return {**recorded, "state": record["state"]}
