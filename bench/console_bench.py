"""Console figures: the first page of the decision log on a 1,000,000-record log, per filter.

    .venv/bin/python bench/console_bench.py [--records 1000000] [--repeat 15] [--rebuild]

Builds (once; kept under /tmp/maestro-console-bench, rebuilt with --rebuild or another size)
a log of varied decisions through the stores' own commit path, so the records, the Merkle
subtrees and the console's facet tables are what the service writes. Then, on SQLite and on
PostgreSQL (when MAESTRO_GATE_BENCH_PG_DSN or MAESTRO_GATE_TEST_PG_DSN is set), times the
console's query for the newest 50 matches of each filter, and on SQLite also the whole
`GET /console/log?...` page served in process (session check, query, template).

Figures are medians over --repeat runs, in ms, and as a ratio to the reference measured in the
same run: reading the newest 50 records by index (what `GET /v1/audit/entries` reads).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maestro_gate.audit.facets import LogFilter
from maestro_gate.audit.postgres import PostgresAuditLog
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.audit.store import TreeLog
from maestro_gate.core.ledger.records import decision_record

WORKDIR = Path("/tmp/maestro-console-bench")
PAGE = 50
CHUNK = 5000
START = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
AGENTS = [f"spiffe://corp.example/agent/a{i:02d}" for i in range(40)]
RULES = [
    ("L3.tool_not_allowlisted", "l3_agent_frameworks", ["T2"]),
    ("L2.restricted_to_external", "l2_data_operations", ["T1", "T9"]),
    ("L4.egress_not_allowlisted", "l4_deployment_infrastructure", ["T14"]),
    ("L6.budget_exhausted", "l6_security_compliance", ["T4"]),
    ("L7.delegation_depth", "l7_agent_ecosystem", ["T12", "T13"]),
    ("CL.restricted_session_to_external", "cross_layer", ["T28"]),
    ("L1.prompt_injection_marker", "l1_foundation_models", ["T6"]),
    ("L5.reflection_loop", "l5_evaluation_observability", ["T5"]),
]
HITL = ("L6.irreversible_action", "l6_security_compliance", ["T7"])
KINDS = ["agent_action", "agent_action", "data_movement", "delegation"]


def record_body(n: int, total: int, rng: random.Random) -> dict[str, Any]:
    """Decision n of `total`: 40 agents, ~70% allow, ~25% deny (one or two rules), ~5% HITL."""
    roll = rng.random()
    reasons: list[dict[str, Any]] = []
    if roll < 0.25:
        for rule, layer, threats in rng.sample(RULES, 1 if roll < 0.2 else 2):
            reasons.append({"rule": rule, "layer": layer, "threats": threats, "message": rule})
        decision = "deny"
    elif roll < 0.30:
        rule, layer, threats = HITL
        reasons.append({"rule": rule, "layer": layer, "threats": threats, "message": rule})
        decision = "require_hitl"
    else:
        decision = "allow"
    agent = AGENTS[rng.randrange(len(AGENTS))]
    kind = KINDS[rng.randrange(len(KINDS))]
    layers = {r["layer"]: ("deny" if decision == "deny" else decision) for r in reasons}
    trace = f"trace-{n // 4}"
    at = START + SPAN * (n / total)
    document = {
        "kind": kind,
        "subject": {"id": agent},
        "action": "web.search",
        "arguments": {"q": f"query {n}"},
        "context": {"trace_id": trace},
    }
    return decision_record(
        decision_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        timestamp=at.isoformat(timespec="microseconds"),
        kind=kind,
        subject=agent,
        decision=decision,
        result={
            "decision": decision,
            "reasons": reasons,
            "obligations": [],
            "layers": layers,
            "approvers_required": 1 if decision == "require_hitl" else 0,
        },
        policy={"revision": "2026.11", "digest": "sha256:" + "ab" * 32, "engine": "embedded"},
        mode="enforce",
        approval=None,
        masked_input=document,
        input_sha256="cd" * 32,
        trace_id=trace,
    )


def fill(log: TreeLog, total: int) -> float:
    """Append `total` records through the store's own batch commit (records, subtrees, facets)."""
    rng = random.Random(19)
    started = time.perf_counter()
    log.start()
    try:
        for at in range(log.count(), total, CHUNK):
            bodies = [record_body(n, total, rng) for n in range(at, min(at + CHUNK, total))]
            log._commit(bodies)  # the writer thread's own call, without a queue per record
    finally:
        log.close()
    return time.perf_counter() - started


def filters(total: int) -> list[tuple[str, LogFilter]]:
    """The filters timed: each alone, combined, a time window, and a rare combination."""
    middle = (START + SPAN / 2).isoformat()
    an_hour = (START + SPAN / 2 + timedelta(hours=1)).isoformat()
    last_trace = f"trace-{(total - 1) // 4 - 1000}"
    return [
        ("no filter", LogFilter()),
        ("decision=deny", LogFilter(decision="deny")),
        ("agent", LogFilter(agent=AGENTS[7])),
        ("kind=delegation", LogFilter(kind="delegation")),
        ("rule", LogFilter(rule="L4.egress_not_allowlisted")),
        ("layer", LogFilter(layer="l6_security_compliance")),
        ("threat", LogFilter(threat="T9")),
        ("trace id", LogFilter(trace_id=last_trace)),
        ("agent+decision", LogFilter(agent=AGENTS[3], decision="deny")),
        (
            "agent+rule+threat",
            LogFilter(agent=AGENTS[5], rule="L2.restricted_to_external", threat="T1"),
        ),
        ("hour in the middle", LogFilter(since=middle, until=an_hour)),
        (
            "hour+decision+layer",
            LogFilter(since=middle, until=an_hour, decision="deny", layer="l3_agent_frameworks"),
        ),
        (
            "rare: agent+hitl+kind",
            LogFilter(
                agent=AGENTS[11],
                decision="require_hitl",
                kind="delegation",
                rule="L6.irreversible_action",
            ),
        ),
    ]


def median_ms(run: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `run` in ms (after one warm-up)."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def time_store(name: str, log: TreeLog, total: int, repeat: int) -> None:
    """Print the first page's time for each filter, and the second page of one."""
    size = log.count()
    reference = median_ms(lambda: list(log.rows(size - PAGE, size)), repeat)
    print(f"\n{name}: {size:,} records; reference (newest {PAGE} by index): {reference:.2f} ms")
    print(f"  {'filter':<24}{'first page ms':>14}{'x reference':>13}{'matches on page':>17}")
    for label, where in filters(total):
        found = len(log.search(where, None, PAGE + 1))
        ms = median_ms(lambda w=where: log.search(w, None, PAGE + 1), repeat)
        print(f"  {label:<24}{ms:>14.2f}{ms / reference:>13.1f}{min(found, PAGE):>17}")
    page = log.search(LogFilter(decision="deny"), None, PAGE + 1)
    before = page[PAGE - 1].idx
    ms = median_ms(lambda: log.search(LogFilter(decision="deny"), before, PAGE + 1), repeat)
    print(f"  {'deny, second page':<24}{ms:>14.2f}{ms / reference:>13.1f}")


def time_console(path: Path, total: int, repeat: int) -> None:
    """Time `GET /console/log?...` served in process on the SQLite log, signed in as an auditor."""
    from fastapi.testclient import TestClient

    from maestro_gate.api.app import create_app
    from tests.conftest import ROOT, make_settings, write_bundle
    from tests.console_support import sign_in
    from tests.credentials import write_keys_file

    keys = write_keys_file(WORKDIR / "keys.json", {"auditor": (["auditor"], [])})
    settings = make_settings(
        WORKDIR,
        write_bundle(WORKDIR / "bundle"),
        audit_dsn=f"sqlite:///{path}",
        api_keys_file=WORKDIR / "keys.json",
        catalog_dir=ROOT / "catalog",
        checkpoint_interval_s=0,
    )
    with TestClient(create_app(settings)) as client:
        sign_in(client, keys["auditor"])
        reference = median_ms(lambda: client.get("/console/log"), repeat)
        print(f"\nconsole page GET /console/log on SQLite ({total:,} records), in process")
        print(f"  {'filter':<24}{'page ms':>14}{'x unfiltered':>13}")
        for label, where in filters(total):
            query = {k: v for k, v in vars(where).items() if v}
            if "agent" in query:
                query["agent"] = query.pop("agent")
            ms = median_ms(lambda q=query: client.get("/console/log", params=q), repeat)
            assert client.get("/console/log", params=query).status_code == 200
            print(f"  {label:<24}{ms:>14.2f}{ms / reference:>13.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    path = WORKDIR / f"audit-{args.records}.db"
    if args.rebuild:
        path.unlink(missing_ok=True)
    sqlite = SqliteAuditLog(path, synchronous="OFF")
    if sqlite.count() < args.records:
        print(f"building {args.records:,} records on SQLite: {fill(sqlite, args.records):.0f} s")
    time_store("SQLite", sqlite, args.records, args.repeat)
    time_console(path, args.records, args.repeat)
    dsn = os.environ.get("MAESTRO_GATE_BENCH_PG_DSN") or os.environ.get("MAESTRO_GATE_TEST_PG_DSN")
    if dsn:
        schema = f"console_bench_{args.records}"
        postgres = PostgresAuditLog(dsn, schema=schema)
        have = postgres.count()
        postgres.close()  # the count opened a pool; fill and start open their own
        if args.rebuild or have < args.records:
            print(
                f"building {args.records:,} records on PostgreSQL: "
                f"{fill(postgres, args.records):.0f} s"
            )
        postgres.start()
        try:
            with postgres._connection() as conn:
                conn.execute("ANALYZE")
            time_store("PostgreSQL", postgres, args.records, args.repeat)
        finally:
            postgres.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
