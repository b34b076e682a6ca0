"""The Python client's overhead: GateClient.decide p50 minus a bare HTTP round trip p50.

Starts `maestro-gate serve` (its own process: the embedded engine, a durable SQLite audit, a
small bundle, the development key) on a loopback port and sends the same allowed
`agent_action` from this process over one connection each, alternating:
- server: a bare `httpx.Client.post` of the pre-encoded body, the answer's bytes read and
  nothing else: what the gate and the loopback cost;
- client: `GateClient.decide(model)`: the request model serialised, a request_id set, the answer
  validated into a DecisionResponse (fail-closed checks included).
The figure is the difference of the p50s, and the client p50 as a ratio of the server p50.
Further parts (the AuthZEN batch against single calls, issue 17 item 4) register in `PARTS`.
Usage: python bench/client_bench.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from maestro_gate.client import GateClient, wire  # noqa: E402
from maestro_gate.core.decision.requests import AgentAction  # noqa: E402
from service_bench import free_port, serve, wait_ready  # noqa: E402
from tests.conftest import write_bundle  # noqa: E402

REQUEST = {
    "kind": "agent_action",
    "subject": {"id": "spiffe://corp.example/agent/analyst", "session_id": "s-1"},
    "action": "web.search",
    "arguments": {"query": "maestro threat layers", "limit": 5},
    "context": {"trace_id": "bench"},
}

Part = Callable[[str, str, int], dict[str, float] | None]
"""A bench part: (base URL, API key, requests) -> its figures, or None when not available."""


def client_overhead(url: str, key: str, requests: int) -> dict[str, float]:
    """p50 of bare round trips and of GateClient.decide, interleaved, in milliseconds.

    Both send a fresh request_id each time (the client sets one; the bare bodies are encoded
    beforehand with one each), so the gate does the same work for both: a retry lookup that
    finds nothing, then a decision.
    """
    model = AgentAction.model_validate(REQUEST)
    bodies = iter([wire.body_of(wire.with_request_id(model)) for _ in range(requests + 50)])
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    bare_ms: list[float] = []
    client_ms: list[float] = []
    with httpx.Client(base_url=url) as bare, GateClient(url, api_key=key) as client:
        for _ in range(50):  # warm both pools and the engine
            bare.post("/v1/decide", content=next(bodies), headers=headers).raise_for_status()
            client.decide(model)

        def bare_call() -> None:
            body = next(bodies)
            started = time.perf_counter()
            bare.post("/v1/decide", content=body, headers=headers).raise_for_status()
            bare_ms.append((time.perf_counter() - started) * 1000)

        def client_call() -> None:
            started = time.perf_counter()
            client.decide(model)
            client_ms.append((time.perf_counter() - started) * 1000)

        for i in range(requests):  # which goes first alternates: the second of a pair is slower
            first, second = (bare_call, client_call) if i % 2 else (client_call, bare_call)
            first()
            second()
    server, sdk = statistics.median(bare_ms), statistics.median(client_ms)
    return {
        "server_p50_ms": server,
        "client_p50_ms": sdk,
        "overhead_p50_ms": sdk - server,
        "client_over_server": sdk / server,
    }


def client_work(url: str, key: str, requests: int) -> dict[str, float]:
    """The client's own work per decision, without I/O: the request model to bytes with a
    request_id, and a real answer of the gate validated into a DecisionResponse (microseconds,
    median of `requests` rounds of 100)."""
    model = AgentAction.model_validate(REQUEST)
    body = wire.body_of(wire.with_request_id(model))
    answer = httpx.post(
        f"{url}/v1/decide",
        content=body,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    response = wire.received(answer, answer.content)
    rounds: list[float] = []
    for _ in range(requests):
        started = time.perf_counter()
        for _ in range(100):
            wire.body_of(wire.with_request_id(model))
            wire.decision_of(response)
        rounds.append((time.perf_counter() - started) * 1e6 / 100)
    return {"client_work_p50_us": statistics.median(rounds), "answer_bytes": len(answer.content)}


AUTHZEN_EVALUATION = {
    "subject": {
        "type": "agent",
        "id": REQUEST["subject"]["id"],
        "properties": {"session_id": "s-1"},
    },
    "action": {"name": "web.search", "properties": {"arguments": {"query": "maestro"}}},
    "resource": {"type": "store", "id": "docs"},
    "context": {"trace_id": "bench"},
}


def authzen_batch_vs_single(url: str, key: str, requests: int) -> dict[str, float] | None:
    """The AuthZEN part (issue 17 item 4): decisions/s of `POST /access/v1/evaluations` (batches
    of 20) against single `POST /access/v1/evaluation` calls, the same evaluation, the same
    number of decisions, each with a fresh X-Request-ID, 20 singles and one batch in turn; None
    where the gate has no AuthZEN."""
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    batch_size = 20
    batch = {**AUTHZEN_EVALUATION, "evaluations": [{} for _ in range(batch_size)]}
    with httpx.Client(base_url=url, headers=headers) as http:
        if http.get("/.well-known/authzen-configuration").status_code != 200:
            return None

        def single() -> None:
            answer = http.post(
                "/access/v1/evaluation",
                json=AUTHZEN_EVALUATION,
                headers={"X-Request-ID": str(uuid.uuid4())},
            )
            if answer.status_code != 200 or answer.json().get("decision") is not True:
                raise SystemExit(f"AuthZEN evaluation not allowed: {answer.text[:300]}")

        def batched() -> None:
            answer = http.post(
                "/access/v1/evaluations", json=batch, headers={"X-Request-ID": str(uuid.uuid4())}
            )
            decisions = [e.get("decision") for e in answer.json().get("evaluations", [])]
            if answer.status_code != 200 or decisions != [True] * batch_size:
                raise SystemExit(f"AuthZEN batch not all allowed: {answer.text[:300]}")

        for _ in range(5):  # warm up
            single()
            batched()
        batches = max(1, requests // batch_size)
        single_s = batch_s = 0.0
        for i in range(batches):  # interleaved, order alternating, so load drift hits both
            for first in (True, False) if i % 2 else (False, True):
                started = time.perf_counter()
                if first:
                    for _ in range(batch_size):
                        single()
                    single_s += time.perf_counter() - started
                else:
                    batched()
                    batch_s += time.perf_counter() - started
    decisions = batches * batch_size
    return {
        "single_decisions_per_s": decisions / single_s,
        "batch_decisions_per_s": decisions / batch_s,
        "batch_over_single": single_s / batch_s,
    }


PARTS: dict[str, Part] = {
    "client overhead": client_overhead,
    "client work": client_work,
    "authzen batch vs single": authzen_batch_vs_single,
}


def main(argv: list[str] | None = None) -> None:
    """Run every part and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="maestro-client-bench-") as scratch:
        work = Path(scratch)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "MAESTRO_GATE_PORT": str(port),
            "MAESTRO_GATE_BUNDLE_DIR": str(write_bundle(work / "bundle")),
            "MAESTRO_GATE_AUDIT_DSN": f"sqlite:///{work / 'audit.db'}",
            "MAESTRO_GATE_CHECKPOINT_KEY_FILE": str(work / "checkpoint.key"),
            "MAESTRO_GATE_LOG_LEVEL": "warning",
        }
        server = serve(work, env)
        try:
            wait_ready(url, server)
            key = (work / "var" / "dev-api-key").read_text().strip()
            for name, part in PARTS.items():
                figures: Any = part(url, key, args.requests)
                if figures is None:
                    print(f"{name}: not measured by this script yet")
                    continue
                print(f"{name} ({args.requests} requests each, loopback, one connection):")
                for figure, value in figures.items():
                    print(f"  {figure:<22} {value:8.3f}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
