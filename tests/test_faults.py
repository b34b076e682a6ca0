"""Fault injection under load, over real HTTP: a full disk, a read-only PostgreSQL, PostgreSQL
restarted mid-load, and Redis down. Every answer is a 200 or a documented 503, never a 500;
every 200 is in the audit log, which verifies afterwards; /ready recovers by itself.

A SQLite store that is read-only at start is covered in tests/test_readiness.py: an open
SQLite file cannot be made read-only under a running writer (the kernel refuses to remount a
file system with files open for writing, and chmod does not stop root or an open handle).
"""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from maestro_gate.config import Settings
from tests.conftest import action, make_settings, write_bundle
from tests.fault_support import (
    log_verifies,
    logged_ids,
    own_database,
    postgres_log,
    set_read_only,
    small_disk,
    sqlite_log,
    wait_for,
)
from tests.test_hot_reload import serving


@dataclass
class Load:
    """Clients deciding in a loop; what each answer was."""

    base: str
    answers: list[tuple[int, str | None, str | None, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, n: int) -> None:
        """One client: kb searches and shell.exec (a deny), until told to stop."""
        with httpx.Client(base_url=self.base, timeout=30.0) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                tool = "shell.exec" if i % 3 == 0 else f"kb_search.{n}.{i}"
                response = client.post("/v1/decide", json=action(tool))
                body: dict[str, Any] = response.json()
                with self.lock:
                    self.answers.append(
                        (
                            response.status_code,
                            body.get("code"),
                            body.get("decision"),
                            body.get("decision_id"),
                        )
                    )

    def count(self) -> int:
        """Answers so far."""
        with self.lock:
            return len(self.answers)

    def codes(self) -> Counter[tuple[int, str | None]]:
        """How many answers of each (status, error code)."""
        return Counter((status, code) for status, code, _, _ in self.answers)

    def decided(self) -> set[str]:
        """The decision ids of every 200."""
        return {d for status, _, _, d in self.answers if status == 200 and d is not None}


@contextmanager
def under_load(settings: Settings, clients: int = 4) -> Iterator[Load]:
    """Serve `settings` and keep `clients` deciding until the block ends."""
    with serving(settings) as base:
        load = Load(base)
        threads = [threading.Thread(target=load.run, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        try:
            assert wait_for(lambda: load.count() >= 20)
            yield load
        finally:
            load.stop.set()
            for thread in threads:
                thread.join()


def ready(base: str) -> int:
    """The status code of `/ready`."""
    return httpx.get(f"{base}/ready", timeout=10.0).status_code


def assert_fail_closed(load: Load, fault: tuple[int, str]) -> None:
    """Only 200 and the fault's documented answer, the fault seen, and no 500."""
    codes = load.codes()
    assert set(codes) <= {(200, None), fault}, codes
    assert codes[fault] > 0, codes
    assert codes[(200, None)] > 0, codes


def test_a_full_disk_under_load(tmp_path: Path) -> None:
    """Filling the audit disk mid-load: 200 or 503 audit_unavailable, every 200 logged."""
    bundle = write_bundle(tmp_path / "bundle")
    with small_disk(tmp_path / "disk", size="16m") as disk:  # room for a full 4 MB WAL
        db = disk.path / "audit.db"
        settings = make_settings(tmp_path, bundle, audit_dsn=f"sqlite:///{db}", auth="off")
        with under_load(settings) as load:
            disk.fill()
            seen = load.count()
            assert wait_for(lambda: load.count() > seen + 50)
            assert wait_for(lambda: ready(load.base) == 503)
            disk.free()
            assert wait_for(lambda: ready(load.base) == 200, seconds=5)
            seen = load.count()
            assert wait_for(lambda: load.count() > seen + 20)
        assert_fail_closed(load, (503, "audit_unavailable"))
        log = sqlite_log(db)
        assert load.decided() <= logged_ids(log)
        log_verifies(log)


def pg_settings(tmp_path: Path, dsn: str) -> Settings:
    """The test bundle on a PostgreSQL audit database, caller authentication off."""
    bundle = write_bundle(tmp_path / "bundle")
    return make_settings(tmp_path, bundle, audit_dsn=dsn, auth="off")


@pytest.mark.postgres
def test_a_read_only_postgresql_under_load(tmp_path: Path) -> None:
    """The database turns read-only (as a promoted standby would not be): 503, then recovery."""
    with own_database() as dsn:
        with under_load(pg_settings(tmp_path, dsn)) as load:
            set_read_only(dsn, True)
            assert wait_for(lambda: ready(load.base) == 503)
            seen = load.count()
            assert wait_for(lambda: load.count() > seen + 20)
            set_read_only(dsn, False)
            assert wait_for(lambda: ready(load.base) == 200, seconds=5)
            seen = load.count()
            assert wait_for(lambda: load.count() > seen + 20)
        assert_fail_closed(load, (503, "audit_unavailable"))
        log = postgres_log(dsn)
        assert load.decided() <= logged_ids(log)
        log_verifies(log)


@pytest.mark.postgres
def test_postgresql_restarted_under_load(tmp_path: Path) -> None:
    """A server restart mid-load: 200 or 503 audit_unavailable, and /ready is 200 again after."""
    with own_database() as dsn:
        with under_load(pg_settings(tmp_path, dsn)) as load:
            restarted = subprocess.run(
                ["pg_ctlcluster", "15", "main", "restart", "-m", "fast"],
                capture_output=True,
                text=True,
                check=False,
            )
            if restarted.returncode != 0:
                pytest.skip(f"cannot restart the local PostgreSQL: {restarted.stderr.strip()}")
            assert wait_for(lambda: ready(load.base) == 200, seconds=10)
            seen = load.count()
            assert wait_for(lambda: load.count() > seen + 50)
        codes = load.codes()
        assert set(codes) <= {(200, None), (503, "audit_unavailable")}, codes
        log = postgres_log(dsn)
        assert load.decided() <= logged_ids(log)
        log_verifies(log)


def test_redis_down_denies_and_records_every_decision(tmp_path: Path) -> None:
    """An unreachable Redis (a port nobody listens on): every answer an audited deny."""
    bundle = write_bundle(tmp_path / "bundle")
    settings = make_settings(tmp_path, bundle, redis_url="redis://127.0.0.1:1/0", auth="off")
    with under_load(settings, clients=2) as load:
        assert ready(load.base) == 200
    assert {status for status, _, _, _ in load.answers} == {200}
    assert {decision for _, _, decision, _ in load.answers} == {"deny"}
    log = sqlite_log(tmp_path / "audit.db")
    assert load.decided() <= logged_ids(log)
    log_verifies(log)
