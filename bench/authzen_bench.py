"""AuthZEN: decisions/s through the batch endpoint against single evaluations, and /v1/decide.

Starts `maestro-gate serve` (one process, embedded engine, durable SQLite audit, the real
bundle) on a loopback port and drives it with hey (keep-alive): `POST /v1/decide` with the
bench's agent action, `POST /access/v1/evaluation` with the same action as AuthZEN, and
`POST /access/v1/evaluations` with a batch of `--batch` copies of it. Runs alternate in that
order `--rounds` times; figures are decisions/s (a batch counts its evaluations) and the ratio
of each to /v1/decide measured in the same round.
Usage: python bench/authzen_bench.py [--seconds 5] [--batch 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bodies import BODIES
from service_bench import bench_headers, free_port, serve, wait_ready

ROOT = Path(__file__).resolve().parent.parent


def as_authzen(body: dict[str, Any]) -> dict[str, Any]:
    """The bench's agent action as an AuthZEN evaluation (core/decision/authzen.py's mapping)."""
    properties = {k: body[k] for k in ("arguments", "reversible", "side_effects") if k in body}
    subject, target = body["subject"], body["target"]
    evaluation: dict[str, Any] = {
        "subject": {
            "type": "agent",
            "id": subject["id"],
            "properties": {k: v for k, v in subject.items() if k != "id"},
        },
        "action": {"name": body["action"], "properties": properties},
        "resource": {
            "type": target["type"],
            "id": target["id"],
            "properties": {k: v for k, v in target.items() if k not in ("type", "id")},
        },
    }
    if body.get("context"):
        evaluation["context"] = body["context"]
    return evaluation


def hey(url: str, body: Path, seconds: int, connections: int, headers: list[str]) -> float:
    """Requests/s of 200 answers hey measured."""
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(connections), "-m", "POST"]
    cmd += ["-T", "application/json", "-D", str(body)]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    ok = re.search(r"\[200\]\s+(\d+) responses", out)
    return int(ok.group(1)) / seconds if ok else 0.0


def main() -> None:
    """Start the service, measure, print the figures, stop the service."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed: run `make bench-tools`")
    work = Path(tempfile.mkdtemp(prefix="maestro-authzen-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MAESTRO_GATE_PORT": str(port),
        "MAESTRO_GATE_BUNDLE_DIR": str((ROOT / "policies").resolve()),
        "MAESTRO_GATE_AUDIT_DSN": f"sqlite:///{work / 'audit.db'}",
        "MAESTRO_GATE_CHECKPOINT_KEY_FILE": str(work / "checkpoint.key"),
        "MAESTRO_GATE_LOG_LEVEL": "warning",
        "MAESTRO_GATE_CALLER_WORK_RATE": "0",
    }
    action = BODIES["agent_action"]
    evaluation = as_authzen(action)
    batch = {"evaluations": [evaluation] * args.batch}
    files = {
        "decide": (base + "/v1/decide", action, 1),
        "evaluation": (base + "/access/v1/evaluation", evaluation, 1),
        "evaluations": (base + "/access/v1/evaluations", batch, args.batch),
    }
    server = serve(work, env)
    rounds: list[dict[str, float]] = []
    try:
        wait_ready(base, server)
        headers = bench_headers(work)
        paths = {}
        for name, (_, body, _) in files.items():
            paths[name] = work / f"{name}.json"
            paths[name].write_text(json.dumps(body))
        for name, (url, _, _) in files.items():  # warm-up
            hey(url, paths[name], 2, args.connections, headers)
        for _ in range(args.rounds):
            rounds.append(
                {
                    name: hey(url, paths[name], args.seconds, args.connections, headers) * per
                    for name, (url, _, per) in files.items()
                }
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(f"authzen bench: 1 process, keep-alive loopback, SQLite durable, {os.cpu_count()} cores")
    for n, got in enumerate(rounds, start=1):
        decide = got["decide"] or float("nan")
        print(
            f"  round {n}: /v1/decide {got['decide']:7.0f}/s | evaluation {got['evaluation']:7.0f}"
            f"/s ({got['evaluation'] / decide:.2f}x) | evaluations of {args.batch}"
            f" {got['evaluations']:7.0f} decisions/s ({got['evaluations'] / decide:.2f}x)"
        )


if __name__ == "__main__":
    main()
