"""Audit log figures: appends/s (SQLite, PostgreSQL), verifying 1,000,000 records, proof latency.

    .venv/bin/python bench/audit_bench.py [--records 1000000] [--appends 50000]

PostgreSQL runs when MAESTRO_GATE_BENCH_PG_DSN or MAESTRO_GATE_TEST_PG_DSN is set (own schema,
dropped afterwards). The million-record log is built in bulk (precomputed records, subtree
hashes and one executemany per chunk); it is then verified exactly as `audit verify` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import rfc8785

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maestro_gate.audit.checkpoint_issuer import issue
from maestro_gate.audit.checkpoint_keys import load_signer
from maestro_gate.audit.export import export_entries, export_rows, verify, verify_store
from maestro_gate.audit.postgres import PostgresAuditLog
from maestro_gate.audit.sqlite import SqliteAuditLog, connect
from maestro_gate.audit.store import TreeLog
from maestro_gate.core.ledger import merkle
from maestro_gate.core.ledger.chain import GENESIS, canonical
from tests.audit_support import body


async def _append_waves(log: TreeLog, bodies: list[dict[str, Any]], wave: int) -> float:
    started = time.perf_counter()
    for at in range(0, len(bodies), wave):
        await asyncio.gather(*(log.append(b) for b in bodies[at : at + wave]))
    return time.perf_counter() - started


def appends(log: TreeLog, n: int, wave: int = 2000) -> float:
    """Appends per second with `wave` concurrent appends at a time (group commit)."""
    bodies = [body(i) for i in range(n)]
    log.start()
    try:
        seconds = asyncio.run(_append_waves(log, bodies, wave))
    finally:
        log.close()
    return n / seconds


def build_log(path: Path, n: int) -> float:
    """Write an n-record log straight into SQLite (records, leaves, subtrees); seconds taken."""
    started = time.perf_counter()
    template = body(1)
    conn = connect(path, synchronous="OFF")
    conn.execute("BEGIN")
    prev = GENESIS
    leaves: list[bytes] = []
    chunk: list[tuple[int, str, bytes, bytes]] = []
    for index in range(n):
        decision_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
        record = {
            **template,
            "decision_id": decision_id,
            "timestamp": f"2026-01-01T00:00:00.{index % 1_000_000:06d}+00:00",
            "index": index,
            "prev": prev,
        }
        data = canonical(record)
        leaf = merkle.leaf_hash(data)
        leaves.append(leaf)
        prev = leaf.hex()
        chunk.append((index, decision_id, leaf, data))
        if len(chunk) == 50_000:
            conn.executemany("INSERT INTO audit_records VALUES (?,?,?,?)", chunk)
            chunk = []
    conn.executemany("INSERT INTO audit_records VALUES (?,?,?,?)", chunk)
    tree = merkle.levels(leaves)
    conn.executemany(
        "INSERT INTO audit_nodes VALUES (?,?,?)",
        ((lv, i, h) for lv, hashes in enumerate(tree) if lv for i, h in enumerate(hashes)),
    )
    conn.execute("COMMIT")
    conn.close()
    assert rfc8785.dumps(record) == data  # the bulk path wrote RFC 8785 bytes
    return time.perf_counter() - started


def proof_latency(log: TreeLog, n: int, samples: int = 300) -> tuple[float, float]:
    """Median milliseconds of an inclusion proof and a consistency proof at tree size n."""
    rng = random.Random(1)
    inclusion, consistency = [], []
    for _ in range(samples):
        index = rng.randrange(n)
        started = time.perf_counter()
        log.prove_inclusion(index, n)
        inclusion.append(time.perf_counter() - started)
        first = rng.randrange(1, n)
        started = time.perf_counter()
        log.prove_consistency(first, n)
        consistency.append(time.perf_counter() - started)
    return statistics.median(inclusion) * 1000, statistics.median(consistency) * 1000


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=50_000)
    parser.add_argument("--export-records", type=int, default=100_000)
    args = parser.parse_args()
    pg_dsn = os.environ.get("MAESTRO_GATE_BENCH_PG_DSN") or os.environ.get(
        "MAESTRO_GATE_TEST_PG_DSN"
    )
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
        tmp = Path(scratch)
        for mode in ("FULL", "NORMAL"):
            rate = appends(
                SqliteAuditLog(tmp / f"appends-{mode}.db", synchronous=mode), args.appends
            )
            print(f"sqlite appends/s (synchronous={mode}, waves of 2000): {rate:,.0f}")
        if pg_dsn:
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            log = PostgresAuditLog(pg_dsn, schema=schema)
            try:
                rate = appends(log, args.appends)
                print(f"postgres appends/s (waves of 2000): {rate:,.0f}")
            finally:
                import psycopg

                with psycopg.connect(pg_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            print("postgres appends/s: skipped (set MAESTRO_GATE_TEST_PG_DSN)")

        path = tmp / "million.db"
        seconds = build_log(path, args.records)
        print(f"built a {args.records:,}-record log in {seconds:.1f} s")
        log = SqliteAuditLog(path)
        signer, _ = load_signer(tmp / "checkpoint.key", "bench.example/audit", create=True)
        checkpoint = issue(log, signer)
        notes = [("checkpoint", checkpoint.note)]
        for workers in (os.cpu_count() or 1, 1):
            started = time.perf_counter()
            report = verify_store(log, signer.verifier_key, notes, workers=workers)
            seconds = time.perf_counter() - started
            assert report.ok, report.problem
            print(
                f"verify {report.checked:,} records from SQLite (+ signed checkpoint), "
                f"{workers} process(es): {seconds:.2f} s"
            )

        export = tmp / "export.jsonl"
        with export.open("wb") as out:
            export_entries(log.rows(0, args.export_records), out)
        started = time.perf_counter()
        report = verify(export_rows(export), None, [])
        seconds = time.perf_counter() - started
        assert report.ok, report.problem
        print(f"verify {report.checked:,} records from an export file: {seconds:.2f} s")

        inclusion, consistency = proof_latency(log, args.records)
        print(
            f"proof latency at tree size {args.records:,} (median, SQLite): "
            f"inclusion {inclusion:.2f} ms, consistency {consistency:.2f} ms"
        )
        started = time.perf_counter()
        log.root_at(args.records)
        elapsed = (time.perf_counter() - started) * 1000
        print(f"root at {args.records:,} from stored subtrees: {elapsed:.2f} ms")


if __name__ == "__main__":
    main()
