"""Nothing acknowledged is lost, nothing forks: worker processes, a server killed mid-load."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from maestro_gate.audit.checkpoint_keys import load_signer
from maestro_gate.audit.export import verify
from maestro_gate.audit.sqlite import SqliteAuditLog
from tests.audit_support import body
from tests.conftest import action, write_bundle

WORKERS = 4
PER_WORKER = 300


def _append_in_process(path: str, seed: int) -> list[tuple[int, str]]:
    """Run in a worker process: its own SqliteAuditLog on the shared file, concurrent appends."""
    log = SqliteAuditLog(Path(path), synchronous="NORMAL", batch_max=64)
    log.start()

    async def run() -> list[tuple[int, str]]:
        receipts = await asyncio.gather(
            *(log.append(body(seed * 10_000 + i)) for i in range(PER_WORKER))
        )
        return [(r.index, r.leaf_hash) for r in receipts]

    try:
        return asyncio.run(run())
    finally:
        log.close()


def test_worker_processes_sharing_one_sqlite_file_extend_one_chain(tmp_path: Path) -> None:
    """Four processes appending to one file at once make one gap-free log that verifies."""
    path = tmp_path / "shared.db"
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        results = pool.starmap(_append_in_process, [(str(path), seed) for seed in range(WORKERS)])
    receipts = [r for result in results for r in result]
    assert sorted(index for index, _ in receipts) == list(range(WORKERS * PER_WORKER))
    log = SqliteAuditLog(path)
    stored = {row.idx: row.leaf_hash.hex() for row in log.rows()}
    assert all(stored[index] == leaf for index, leaf in receipts)
    report = verify(log.verifier_rows(), None, [])
    assert report.ok, report.problem


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _client(base: str, acked: list[str], stop: threading.Event, n: int) -> None:
    with httpx.Client(base_url=base, timeout=10.0) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                response = client.post("/v1/decide", json=action(f"web.search.{n}.{i}"))
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                acked.append(response.json()["decision_id"])


def test_acknowledged_decisions_survive_sigkill_of_the_server(tmp_path: Path) -> None:
    """Every decision a client got a 200 for is in the log after kill -9, and the log verifies."""
    bundle = write_bundle(tmp_path / "bundle")
    db = tmp_path / "audit.db"
    port = _free_port()
    env = {
        **os.environ,
        "MAESTRO_GATE_BUNDLE_DIR": str(bundle),
        "MAESTRO_GATE_AUDIT_DSN": f"sqlite:///{db}",
        "MAESTRO_GATE_CHECKPOINT_KEY_FILE": str(tmp_path / "checkpoint.key"),
        "MAESTRO_GATE_CHECKPOINT_INTERVAL_S": "1",
        "MAESTRO_GATE_AUTH": "off",
        "MAESTRO_GATE_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maestro_gate.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    acked: list[str] = []
    stop = threading.Event()
    clients: list[threading.Thread] = []
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "the server exited before it was ready"
            time.sleep(0.1)
        clients += [
            threading.Thread(target=_client, args=(base, acked, stop, n), daemon=True)
            for n in range(6)
        ]
        for thread in clients:
            thread.start()
        while len(acked) < 400 and server.poll() is None:
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
            server.wait()
    for thread in clients:
        thread.join()
    assert len(acked) >= 400
    log = SqliteAuditLog(db)
    logged = {row.record.split(b'"decision_id":"')[1][:36].decode() for row in log.rows()}
    assert set(acked) <= logged
    key, created = load_signer(
        tmp_path / "checkpoint.key", "maestro-gate.local/audit", create=False
    )
    stored = log.last_checkpoint()
    notes = [("the latest stored checkpoint", stored.note)] if stored else []
    report = verify(log.verifier_rows(), key.verifier_key, notes)
    assert report.ok, report.problem
    assert not created
