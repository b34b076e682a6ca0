"""`posture replay` figures: decisions replayed per second on a 100,000-record log.

    .venv/bin/python bench/replay_bench.py [--records 100000]

The log is made from real decisions: the service (in process, the real bundle, the embedded
engine, SQLite) decides the traffic of tests/test_posture.py, and its schema-2 records (with
the state the policy saw) are appended again, each under a fresh decision id, through the audit
store until the log holds `--records`. The replay then re-evaluates the last `--records`
decisions on a candidate registry (the collector gains sql_query and loses web_search), as
`posture replay` does: read from SQLite, rebuild each policy input, evaluate, compare.
The reference, measured in the same run on the same engine and inputs, is the engine alone
(the first 20,000 policy inputs prebuilt in memory, the same concurrency), once before and once
after the replay, as the machine is shared: the ratio to their mean is what reading the log
and comparing results cost on top of the evaluations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maestro_gate.audit.backends import open_log
from maestro_gate.posture import sources
from maestro_gate.posture.replay import Replayer, policy_input, report
from tests.conftest import POLICIES, live_client, make_settings
from tests.test_posture import TRAFFIC, A, test_registry


def seed(tmp: Path) -> tuple[str, list[dict[str, Any]]]:
    """The audit DSN of a log of real decisions, and their record bodies."""
    registry = tmp / "registry.json"
    registry.write_text(json.dumps(test_registry()))
    settings = make_settings(tmp, POLICIES, registry_file=registry)
    with live_client(settings) as client:
        for _ in range(4):
            for body in TRAFFIC.values():
                assert client.post("/v1/decide", json=body).status_code == 200
    log = open_log(settings.audit_dsn)
    try:
        bodies = [json.loads(e.record) for e in log.rows()]
    finally:
        log.close()
    return settings.audit_dsn, [b for b in bodies if b.get("type") == "decision"]


async def grow(dsn: str, bodies: list[dict[str, Any]], total: int, wave: int = 2000) -> None:
    """Append copies of `bodies` (fresh ids) until the log holds `total` records."""
    log = open_log(dsn, synchronous="OFF")
    log.start()
    try:
        have = log.count()
        while have < total:
            batch = []
            for i in range(min(wave, total - have)):
                source = bodies[(have + i) % len(bodies)]
                copy = {k: v for k, v in source.items() if k not in ("index", "prev")}
                batch.append({**copy, "decision_id": str(uuid.uuid4())})
            await asyncio.gather(*(log.append(b) for b in batch))
            have += len(batch)
    finally:
        log.close()


async def engine_alone(engine: Any, documents: list[dict[str, Any]], concurrency: int) -> float:
    """Evaluations per second of prebuilt policy inputs, `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(document: dict[str, Any]) -> None:
        async with gate:
            await engine.evaluate(document, 2.0)

    started = time.perf_counter()
    for at in range(0, len(documents), 512):
        await asyncio.gather(*(one(d) for d in documents[at : at + 512]))
    return len(documents) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dsn, bodies = seed(root)
        started = time.perf_counter()
        asyncio.run(grow(dsn, bodies, args.records))
        print(f"log: {args.records} records built in {time.perf_counter() - started:.1f} s")
        candidate = test_registry()
        tools = candidate["agents"][A + "collector-web"]["tools"]
        tools["sql_query"] = {}
        del tools["web_search"]
        (root / "candidate.json").write_text(json.dumps(candidate))
        bundle = sources.load_bundle(POLICIES, root / "candidate.json")
        with sources.local_engine(bundle) as engine:

            async def run() -> tuple[dict[str, Any], float, list[float]]:
                log = open_log(dsn)
                try:
                    sample = sources.last_decisions(log, min(args.records, 20_000))
                finally:
                    log.close()
                documents = [policy_input(r)[0] for r in sample]
                references = [await engine_alone(engine, documents, 8)]
                started = time.perf_counter()
                log = open_log(dsn)
                try:
                    records = sources.last_decisions(log, args.records)
                finally:
                    log.close()
                result = await report(records, Replayer(engine))
                whole = time.perf_counter() - started
                references.append(await engine_alone(engine, documents, 8))
                return result, whole, references

            result, whole, references = asyncio.run(run())
        reference = sum(references) / len(references)
        end_to_end = result["replayed"] / whole
        print(
            f"replayed {result['replayed']} decisions ({result['changed']} would change: "
            f"{result['transitions']}) in {whole:.1f} s: {end_to_end:,.0f} decisions/s "
            f"end to end ({result['per_second']:,.0f}/s evaluating and comparing)"
        )
        print(
            "reference, the engine alone on the same inputs: "
            + " and ".join(f"{r:,.0f}" for r in references)
            + f" evaluations/s (before, after); replay/engine = {end_to_end / reference:.2f}"
        )


if __name__ == "__main__":
    main()
