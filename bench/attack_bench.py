"""Under attack: ordinary callers' p99 and decided share while other callers flood the gate
with the most expensive requests; and how far answers overshoot the deadline.

Starts `maestro-gate serve` (one process, the chosen engine, durable SQLite audit, the real
bundle) on a loopback port with two kinds of API key: `agent-N` for ordinary callers and
`attacker-N` for the attack. Phases, each `--seconds` long:
1. baseline: one ordinary caller sends `kb_search` decisions at `--rate`/s, alone;
2. flood: the same, while `--senders` attacker keys each send schema-valid delegations at the
   size limits (64 hops x 256 scopes, 256 task scopes, 256 goal scopes, 256 plan steps: about
   261 KB; far heavier than the gate evaluates) back to back;
3. heavy: the same, while the attackers send the heaviest delegation the gate does evaluate
   (24 hops, weight 629 of 640) back to back;
4. deadline: on a second service with the weight limit and the work budget lifted, 10
   attacker keys send one 261 KB delegation each at once (it takes seconds on rego-cpp), and
   the answer times are compared with the deadline (MAESTRO_GATE_DECISION_TIMEOUT_MS, 250 ms).
"decided normally" means HTTP 200 with the decision the same request gets alone (allow), not a
GATE.* deny. Usage: python bench/attack_bench.py [--seconds 8] [--rate 20] [--senders 3]
[--engine embedded]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bodies import BODIES
from maestro_gate.auth.keys import KeyEntry, key_hash, new_key, write_keys
from maestro_gate.core.decision.callers import ANY_SUBJECT, ROLES
from service_bench import free_port, serve, wait_ready

ROOT = Path(__file__).resolve().parent.parent
ORCHESTRATOR = "spiffe://corp.example/agent/orchestrator"
COLLECTOR = "spiffe://corp.example/agent/collector-web"


def heaviest_admitted() -> dict[str, Any]:
    """The heaviest delegation under the default weight limit: a 24-hop chain (weight 629)."""
    body = heavy_delegation()
    body["context"]["delegation_chain"] = [
        {**hop, "scopes": hop["scopes"][:1]} for hop in body["context"]["delegation_chain"][:24]
    ]
    body["context"]["plan"] = body["context"]["goal_scopes"] = []
    body["task"]["scopes"] = body["task"]["scopes"][:5]
    return body


def heavy_delegation() -> dict[str, Any]:
    """The most expensive request the schema admits: every list of a delegation at its limit."""
    chain = [
        {
            "delegator": ORCHESTRATOR if i % 2 == 0 else COLLECTOR,
            "delegatee": COLLECTOR if i % 2 == 0 else ORCHESTRATOR,
            "scopes": [f"scope-{i}-{j}" for j in range(256)],
            "ttl_seconds": 600,
        }
        for i in range(64)
    ]
    return {
        "kind": "delegation",
        "subject": {"id": ORCHESTRATOR},
        "delegatee": COLLECTOR,
        "task": {"goal": "collect", "scopes": [f"task-{j}" for j in range(256)]},
        "ttl_seconds": 600,
        "context": {
            "trace_id": "attack",
            "task_id": "attack",
            "delegation_chain": chain,
            "goal_scopes": [f"goal-{j}" for j in range(256)],
            "plan": [{"action": f"tool-{j}", "scope": f"goal-{j}"} for j in range(256)],
        },
    }


OTHER_ANSWERS: dict[str, int] = {}


def ordinary(base: str, key: str, rate: float, until: float) -> list[tuple[float, bool]]:
    """(latency s, decided normally) for paced `kb_search` decisions until `until`."""
    results: list[tuple[float, bool]] = []
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10) as client:
        next_at = time.monotonic()
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                answer = client.post("/v1/decide", json=BODIES["agent_action"])
                body = answer.json()
                normal = answer.status_code == 200 and body["decision"] == "allow"
                if not normal:
                    rules = [r["rule"] for r in body.get("reasons", [])] or [body.get("code")]
                    shown = f"{answer.status_code} {','.join(map(str, rules))}"
                    OTHER_ANSWERS[shown] = OTHER_ANSWERS.get(shown, 0) + 1
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                normal = False
                OTHER_ANSWERS[type(exc).__name__] = OTHER_ANSWERS.get(type(exc).__name__, 0) + 1
            results.append((time.monotonic() - started, normal))
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    return results


def attacker(
    base: str, key: str, body: dict[str, Any], until: float, counts: dict[int, int]
) -> None:
    """Send `body` back to back until `until`, counting answers by status."""
    content = json.dumps(body).encode()  # encoded once: the bench shares the machine's 2 cores
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        while time.monotonic() < until:
            try:
                status = client.post("/v1/decide", content=content).status_code
            except httpx.HTTPError:
                status = 0
            counts[status] = counts.get(status, 0) + 1


def summary(results: list[tuple[float, bool]]) -> str:
    """p50/p99 in ms and the share decided normally."""
    latencies = sorted(r[0] * 1000 for r in results)
    share = sum(r[1] for r in results) / len(results) * 100
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return (
        f"{len(results)} requests, p50 {statistics.median(latencies):.1f} ms,"
        f" p99 {p99:.1f} ms, decided normally {share:.1f}%"
    )


def main() -> None:
    """Start the service, run the phases, print the figures, stop the service."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--engine", default="embedded")
    parser.add_argument("--bundle", type=Path, default=ROOT / "policies")
    args = parser.parse_args()
    names = [f"agent-{n}" for n in range(4)] + [f"attacker-{n}" for n in range(10)]
    keys = {name: new_key() for name in names}
    flood, heavy = heavy_delegation(), heaviest_admitted()
    attackers = [keys[f"attacker-{n}"] for n in range(10)]
    phases: dict[str, tuple[list[tuple[float, bool]], dict[int, int]]] = {}
    with service(args, keys, {}) as base:
        ordinary(base, keys["agent-0"], args.rate, time.monotonic() + 1)  # warm-up
        until = time.monotonic() + args.seconds
        phases["alone"] = ordinary(base, keys["agent-0"], args.rate, until), {}
        heavy_alone = one_at_a_time(base, attackers, heavy)
        time.sleep(2)  # let the attackers' budgets refill
        for n, (name, body) in enumerate((("flood", flood), ("heavy", heavy)), start=1):
            phases[name] = attack(base, keys[f"agent-{n}"], attackers[: args.senders], body, args)
            time.sleep(3)  # let the budgets refill and any overrunning evaluation end
    lifted = {"MAESTRO_GATE_MAX_REQUEST_WEIGHT": "1000000", "MAESTRO_GATE_CALLER_WORK_RATE": "0"}
    with service(args, keys, lifted) as base:
        ordinary(base, keys["agent-0"], args.rate, time.monotonic() + 1)  # warm-up
        overshoot = deadline_overshoot(base, attackers, flood)
    print(
        f"attack bench: engine {args.engine}, {os.cpu_count()} cores, {args.seconds:.0f} s phases,"
        f" {args.senders} attacker keys"
    )
    print(f"  flood request: {len(json.dumps(flood)):,} bytes; heavy request: weight 629")
    for name, (results, counts) in phases.items():
        answers = f"; attack answers {dict(sorted(counts.items()))}" if counts else ""
        print(f"  ordinary caller, {name:5}: {summary(results)}{answers}")
    print(
        f"  heaviest admitted request alone, 10 one at a time: median"
        f" {statistics.median(heavy_alone):.1f} ms, max {max(heavy_alone):.1f} ms"
    )
    print(f"  ordinary answers not normal: {OTHER_ANSWERS}")
    print(
        f"  deadline 250 ms, 10 at once : answers {min(overshoot):.0f}-{max(overshoot):.0f} ms,"
        f" overshoot at most {max(overshoot) - 250:.0f} ms (target <= 50)"
    )


def attack(
    base: str, key: str, attacker_keys: list[str], body: dict[str, Any], args: argparse.Namespace
) -> tuple[list[tuple[float, bool]], dict[int, int]]:
    """An ordinary caller's results while `attacker_keys` send `body` back to back."""
    until = time.monotonic() + args.seconds
    counts: dict[int, int] = {}
    senders = [
        threading.Thread(target=attacker, args=(base, k, body, until, counts))
        for k in attacker_keys
    ]
    for sender in senders:
        sender.start()
    results = ordinary(base, key, args.rate, until)
    for sender in senders:
        sender.join()
    return results, counts


@contextlib.contextmanager
def service(args: argparse.Namespace, keys: dict[str, str], extra: dict[str, str]) -> Iterator[str]:
    """A served gate with every key of `keys`, `extra` in its environment; yields its base URL."""
    work = Path(tempfile.mkdtemp(prefix="maestro-attack-"))
    write_keys(
        work / "keys.json",
        [
            KeyEntry(n, frozenset(ROLES), frozenset({ANY_SUBJECT}), key_hash(k))
            for n, k in keys.items()
        ],
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MAESTRO_GATE_PORT": str(port),
        "MAESTRO_GATE_ENGINE": args.engine,
        "MAESTRO_GATE_BUNDLE_DIR": str(args.bundle.resolve()),
        "MAESTRO_GATE_AUDIT_DSN": f"sqlite:///{work / 'audit.db'}",
        "MAESTRO_GATE_CHECKPOINT_KEY_FILE": str(work / "checkpoint.key"),
        "MAESTRO_GATE_API_KEYS_FILE": str(work / "keys.json"),
        "MAESTRO_GATE_LOG_LEVEL": "warning",
        **extra,
    }
    server = serve(work, env)
    try:
        wait_ready(base, server)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def one_at_a_time(base: str, keys: list[str], body: dict[str, Any]) -> list[float]:
    """Answer times in ms of `body` sent by each key in turn, each answered 200."""
    times: list[float] = []
    for key in keys:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            started = time.monotonic()
            assert client.post("/v1/decide", json=body).status_code == 200
            times.append((time.monotonic() - started) * 1000)
    return times


def deadline_overshoot(base: str, keys: list[str], body: dict[str, Any]) -> list[float]:
    """Answer times in ms of one heavy request per key, all sent at once.

    The body is encoded once beforehand and the clients connect first, so the times are the
    service's: from the request's bytes leaving to its answer arriving.
    """
    content = json.dumps(body).encode()
    times: list[float] = []
    ready = threading.Barrier(len(keys))

    def one(key: str) -> None:
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            client.get("/health")  # connected before the clock starts
            ready.wait()
            started = time.monotonic()
            client.post("/v1/decide", content=content)
            times.append((time.monotonic() - started) * 1000)

    threads = [threading.Thread(target=one, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


if __name__ == "__main__":
    main()
