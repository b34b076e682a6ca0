"""HTTP service: decisions/s, p50/p99 at a fixed 1,000/s, and /v1/decide vs a no-op endpoint.

Starts `maestro-gate serve` (one process, embedded engine, durable SQLite audit with
synchronous=FULL, the real bundle) on a loopback port, then drives it with compiled load
generators: wrk (keep-alive, max throughput) and hey (fixed rate, latency percentiles).
Usage: python bench/service_bench.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bodies import BODIES

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`maestro-gate serve` in `work` with `env`, its stderr in work/server.err."""
    return subprocess.Popen(
        [str(VENV_BIN / "maestro-gate"), "serve"],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / "server.err").open("w"),
    )


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll /ready until 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(base + "/ready", timeout=1) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"service did not become ready (exit code {server.poll()})")


def wrk(url: str, seconds: int, connections: int, script: Path | None, headers: list[str]) -> float:
    """Requests/s wrk measured (one thread, keep-alive)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx responses from {url}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def hey_fixed_rate(
    url: str, body: Path, rate: int, seconds: int, headers: list[str], workers: int
) -> dict[str, float]:
    """p50/p99 (ms) and achieved rate at a fixed request rate, via hey.

    hey paces each worker separately and starts them together, so the load arrives in bursts of
    `workers` requests: fewer workers give a smoother arrival, but each worker waits for its
    answer, so `workers` must exceed rate x latency or the rate is not reached.
    """
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers)]
    cmd += ["-m", "POST", "-T", "application/json", "-D", str(body)]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    figures = {}
    for pct in ("50", "99"):
        m = re.search(rf"{pct}%+ in ([\d.]+) secs", out)
        figures[f"p{pct}_ms"] = float(m.group(1)) * 1000 if m else float("nan")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rate"] = float(rps.group(1)) if rps else 0.0
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    figures["non_200"] = sum(int(n) for code, n in codes if code != "200")
    return figures


def main() -> None:
    """Start the service, measure, print the figures, stop the service."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument(
        "--workers",
        default="6,20",
        help="hey worker counts at the fixed rate, comma-separated (each arrives in bursts of its"
        " size: the fewest that still reach the rate come closest to evenly paced arrivals)",
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "policies")
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: run `make bench-tools`")
    work = Path(tempfile.mkdtemp(prefix="maestro-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MAESTRO_GATE_PORT": str(port),
        "MAESTRO_GATE_BUNDLE_DIR": str(args.bundle.resolve()),
        "MAESTRO_GATE_AUDIT_DSN": f"sqlite:///{work / 'audit.db'}",
        "MAESTRO_GATE_CHECKPOINT_KEY_FILE": str(work / "checkpoint.key"),
        "MAESTRO_GATE_LOG_LEVEL": "info",
    }
    server = serve(work, env)
    try:
        wait_ready(base, server)
        headers = bench_headers(work)
        body_file = work / "body.json"
        body_file.write_text(json.dumps(BODIES["agent_action"]))
        script = work / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body_file.read_text())}\n"
        )
        wrk(base + "/v1/decide", 3, args.connections, script, headers)  # warm-up
        decide = wrk(base + "/v1/decide", args.seconds, args.connections, script, headers)
        noop = wrk(base + "/health", args.seconds, args.connections, None, headers)
        fixed = {
            workers: hey_fixed_rate(
                base + "/v1/decide", body_file, args.rate, args.seconds, headers, workers
            )
            for workers in (int(w) for w in args.workers.split(","))
        }
        records = audit_count(work / "audit.db")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    cores = os.cpu_count()
    print(f"service bench: 1 process, keep-alive loopback, SQLite synchronous=FULL, {cores} cores")
    print(f"  /v1/decide max throughput : {decide:8.0f} decisions/s")
    print(f"  /health (no-op) throughput: {noop:8.0f} requests/s")
    print(f"  ratio decide / no-op      : {decide / noop if noop else 0:8.2f}")
    for workers, got in fixed.items():
        print(
            f"  at {args.rate}/s fixed rate ({workers} hey workers): p50 {got['p50_ms']:.2f} ms,"
            f" p99 {got['p99_ms']:.2f} ms, achieved"
            f" {got['rate']:.0f}/s, non-200 {got['non_200']:.0f}"
        )
    print(f"  audit records written     : {records}")


def bench_headers(work: Path) -> list[str]:
    """The development credential the embedded profile wrote on first run, as a header."""
    key_file = work / "var" / "dev-api-key"
    return [f"Authorization: Bearer {key_file.read_text().strip()}"] if key_file.is_file() else []


def audit_count(path: Path) -> int:
    """Records in the bench's audit file."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit_records").fetchone()[0])


if __name__ == "__main__":
    main()
