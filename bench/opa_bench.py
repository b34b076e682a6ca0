"""Decisions per second: the embedded engine against the OPA engine, side by side.

    .venv/bin/python bench/opa_bench.py [--requests 4000] [--concurrency 1,16] [--bundle DIR]

Both engines evaluate `data.maestro.decision.result` over the real bundle in policies/ with a mix
of allowed and denied requests, the input documents the DecisionPoint builds.

The OPA figure is measured against the OPA stand-in (tests/opa_standin.py), run here in its own
process because no OPA binary can be installed on these machines. The stand-in evaluates with
OPA's own Go evaluator in process (the opa-inprocess engine) behind a Python HTTP/1.1 server: so
the OPA column is OPA's evaluation plus the adapter, aiohttp, loopback HTTP and a Python server
where a real OPA has Go's. `bench/engine_bench.py` gives OPA's evaluation alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is sys.path[0], where bench/requests.py would shadow the `requests`
# library that opa_client imports; the repository root (for tests.opa_standin) replaces it.
sys.path[0] = str(ROOT)

from maestro_gate.api.decide import parse_request  # noqa: E402
from maestro_gate.core.decision.ports import PolicyEngine, empty_state  # noqa: E402
from maestro_gate.engine.bundle import read_bundle  # noqa: E402
from maestro_gate.engine.embedded import EmbeddedEngine  # noqa: E402
from maestro_gate.engine.opa import OpaEngine  # noqa: E402

COLLECTOR = "spiffe://corp.example/agent/collector-web"
REQUESTS: list[dict[str, Any]] = [
    {
        "kind": "agent_action",
        "subject": {"id": COLLECTOR},
        "action": "web_search",
        "arguments": {"max_results": 5},
    },
    {
        "kind": "agent_action",
        "subject": {"id": COLLECTOR},
        "action": "web_search",
        "arguments": {"max_results": 500},
    },
    {
        "kind": "agent_action",
        "subject": {"id": "spiffe://corp.example/agent/ghost"},
        "action": "web_search",
    },
    {
        "kind": "delegation",
        "subject": {"id": "spiffe://corp.example/agent/orchestrator"},
        "delegatee": COLLECTOR,
        "task": {"goal": "collect news", "scopes": ["web:read"]},
        "ttl_seconds": 600,
        "context": {"trace_id": "t-1", "task_id": "task-1"},
    },
]


def documents() -> list[dict[str, Any]]:
    """The Rego input documents, shaped as the DecisionPoint shapes them."""
    return [
        {
            **parse_request(body).model_dump(mode="json", exclude_none=True),
            "state": empty_state(window_seconds=60),
        }
        for body in REQUESTS
    ]


async def run(
    engine: PolicyEngine, docs: list[dict[str, Any]], total: int, concurrency: int
) -> tuple[float, float, float]:
    """(decisions/s, p50 ms, p99 ms) for `total` evaluations, `concurrency` in flight."""
    for doc in docs:  # warm up: worker compilation, pooled connections
        await engine.evaluate(doc, 10.0)
    latencies: list[float] = []
    per_worker = total // concurrency

    async def worker(offset: int) -> None:
        for i in range(per_worker):
            started = time.perf_counter()
            await engine.evaluate(docs[(offset + i) % len(docs)], 10.0)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000


async def bench(url: str, bundle_dir: Path, total: int, levels: list[int]) -> None:
    """Print the side-by-side table; `url` is the OPA stand-in serving `bundle_dir`."""
    docs = documents()
    embedded = EmbeddedEngine(workers=2)
    embedded.load(read_bundle(bundle_dir))
    opa = OpaEngine(url)
    await opa.open()
    try:
        print(f"bundle {bundle_dir} ({len(docs)} request shapes, {total} decisions per run)")
        print("OPA column: the OPA stand-in over loopback HTTP (OPA's engine behind a Python")
        print("            server), i.e. OPA's evaluation plus the adapter + HTTP path.\n")
        print(
            f"{'in flight':>9} | {'embedded /s':>11} {'p50 ms':>7} {'p99 ms':>7} |"
            f" {'opa /s':>9} {'p50 ms':>7} {'p99 ms':>7}"
        )
        for concurrency in levels:
            e = await run(embedded, docs, total, concurrency)
            o = await run(opa, docs, total, concurrency)
            print(
                f"{concurrency:>9} | {e[0]:>11,.0f} {e[1]:>7.3f} {e[2]:>7.3f} |"
                f" {o[0]:>9,.0f} {o[1]:>7.3f} {o[2]:>7.3f}"
            )
    finally:
        await opa.close()
        embedded.close()


def main() -> None:
    """Start the OPA stand-in in its own process, run both engines, stop the stand-in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--bundle", type=Path, default=ROOT / "policies")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.opa_standin", str(args.bundle)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert standin.stdin is not None
    assert standin.stdout is not None
    try:
        url = standin.stdout.readline().strip()
        asyncio.run(bench(url, args.bundle, args.requests, levels))
    finally:
        standin.stdin.close()  # the stand-in serves until its stdin closes
        standin.wait(timeout=30)


if __name__ == "__main__":
    main()
