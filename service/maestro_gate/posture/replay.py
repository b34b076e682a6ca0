"""Step 6, what a policy change would do: the log's last decisions re-evaluated on a candidate.

Each decision record gives the request it decided (`input`) and, from schema 2 on, the
`state` the policy saw; the pair is the policy input, evaluated as it stands on the candidate
bundle's engine. A record without a state (schema 1) is evaluated with a quiet state, and a
record whose input was masked (its hash no longer matches) with the masked values: both are
counted as `approximate`. A decision the gate itself made (a `GATE.*` reason: engine failure,
emergency stop, unreadable state, a used approval) is not the policy's and is `skipped`.
Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.core.decision.ports import PolicyEngine, empty_state
from maestro_gate.core.errors import GateError
from maestro_gate.core.ledger.chain import canonical, sha256_hex
from maestro_gate.core.ledger.records import replayable_state

SCHEMA = "maestro-gate/posture/replay/v1"
CHUNK = 512


@dataclass(frozen=True)
class Replayed:
    """One record and the candidate's result for it."""

    record: dict[str, Any]
    after: dict[str, Any]
    state_recorded: bool
    masked: bool


def policy_input(record: dict[str, Any], window_s: int = 60) -> tuple[dict[str, Any], bool, bool]:
    """The policy input a decision record holds, whether its state was recorded, and whether
    its input was masked."""
    request = record.get("input") or {}
    try:
        masked = sha256_hex(canonical(request)) != record.get("input_sha256")
    except ValueError:
        masked = True
    recorded = record.get("state")
    if isinstance(recorded, dict):
        return {**request, "state": replayable_state(recorded)}, True, masked
    state = empty_state(window_s)
    state.update(now_ns=time.time_ns(), pending_approvals=0)
    state["emergency_stop"] = {"agents": [], "classes": []}
    return {**request, "state": state}, False, masked


def gate_made(record: dict[str, Any]) -> bool:
    """Whether the gate, not the policy, decided the record (a `GATE.*` reason)."""
    return any(str(rule).startswith("GATE.") for rule in record.get("rules") or [])


@dataclass
class Replayer:
    """Re-evaluates records on a candidate engine, a few in flight at a time."""

    engine: PolicyEngine
    timeout_s: float = 2.0
    concurrency: int = 8
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    async def one(self, record: dict[str, Any]) -> Replayed:
        """The candidate's result for one record (a failing evaluation: a GATE deny)."""
        document, state_recorded, masked = policy_input(record)
        try:
            raw = await self.engine.evaluate(document, self.timeout_s)
            after = raw.value if isinstance(raw.value, dict) else {"decision": "deny"}
        except GateError as exc:
            self.errors += 1
            if len(self.error_examples) < 10:
                self.error_examples.append(f"{record.get('decision_id')}: {exc.message}")
            after = {"decision": "deny", "reasons": [{"rule": f"GATE.{exc.code}"}], "layers": {}}
        return Replayed(record, after, state_recorded, masked)

    async def all(self, records: list[dict[str, Any]]) -> list[Replayed]:
        """Results for `records`, in order, in chunks so a large log stays in bounded memory."""
        gate = asyncio.Semaphore(self.concurrency)

        async def bounded(record: dict[str, Any]) -> Replayed:
            async with gate:
                return await self.one(record)

        done: list[Replayed] = []
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            done.extend(await asyncio.gather(*(bounded(r) for r in chunk)))
        return done


def rules_of(result: dict[str, Any]) -> set[str]:
    """The rule ids a policy result gives reasons for."""
    return {str(r.get("rule")) for r in result.get("reasons") or [] if isinstance(r, dict)}


def change(item: Replayed) -> dict[str, Any] | None:
    """What changed for one record, or None when the candidate decides as the log did."""
    before, after = item.record.get("result") or {}, item.after
    old, new = str(item.record.get("decision")), str(after.get("decision"))
    was, now = rules_of(before), rules_of(after)
    if old == new and was == now:
        return None
    old_layers, new_layers = before.get("layers") or {}, after.get("layers") or {}
    layers = {
        layer: [old_layers.get(layer), new_layers.get(layer)]
        for layer in sorted(set(old_layers) | set(new_layers))
        if old_layers.get(layer) != new_layers.get(layer)
    }
    return {
        "decision_id": item.record.get("decision_id"),
        "index": item.record.get("index"),
        "timestamp": item.record.get("timestamp"),
        "kind": item.record.get("kind"),
        "subject": item.record.get("subject"),
        "before": old,
        "after": new,
        "rules_before": sorted(was),
        "rules_after": sorted(now),
        "rules_added": sorted(now - was),
        "rules_removed": sorted(was - now),
        "layers": layers,
        "state_recorded": item.state_recorded,
        "masked": item.masked,
    }


def summarize(results: Iterable[Replayed], skipped: int) -> dict[str, Any]:
    """Every change with totals per transition, per rule and per layer."""
    changes: list[dict[str, Any]] = []
    approximate = replayed = 0
    for item in results:
        replayed += 1
        approximate += (not item.state_recorded) or item.masked
        found = change(item)
        if found is not None:
            changes.append(found)
    transitions = Counter(f"{c['before']}->{c['after']}" for c in changes)
    per_rule: Counter[str] = Counter()
    per_layer: Counter[str] = Counter()
    for c in changes:
        per_rule.update(c["rules_added"] + c["rules_removed"])
        per_layer.update(c["layers"].keys())
    return {
        "replayed": replayed,
        "skipped_gate_decisions": skipped,
        "approximate": approximate,
        "changed": len(changes),
        "unchanged": replayed - len(changes),
        "transitions": dict(sorted(transitions.items())),
        "per_rule": dict(sorted(per_rule.items())),
        "per_layer": dict(sorted(per_layer.items())),
        "changes": changes,
    }


async def report(records: list[dict[str, Any]], replayer: Replayer) -> dict[str, Any]:
    """The replay report (schema `SCHEMA`) for decision records, oldest first."""
    policy_made = [r for r in records if not gate_made(r)]
    started = time.perf_counter()
    results = await replayer.all(policy_made)
    seconds = time.perf_counter() - started
    body = summarize(results, len(records) - len(policy_made))
    body["seconds"] = round(seconds, 3)
    body["per_second"] = round(len(results) / seconds, 1) if seconds > 0 else None
    body["engine_errors"] = replayer.errors
    body["engine_error_examples"] = replayer.error_examples
    return body
