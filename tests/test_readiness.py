"""`/ready` probes the audit store itself: it falls when the store fails and rises again by
itself once the store recovers, with no decision traffic in between."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.core.errors import AuditUnavailable
from tests.audit_support import body
from tests.conftest import action, live_client, make_settings, write_bundle
from tests.fault_support import small_disk, wait_for


def ready(client: TestClient) -> int:
    """The status code of `/ready`."""
    return client.get("/ready").status_code


def test_ready_falls_on_a_full_disk_and_rises_when_space_returns(tmp_path: Path) -> None:
    """A full audit disk turns /ready 503 naming it; freeing space turns it 200 with no traffic."""
    bundle = write_bundle(tmp_path / "bundle")
    with small_disk(tmp_path / "disk") as disk:
        settings = make_settings(tmp_path, bundle, audit_dsn=f"sqlite:///{disk.path / 'a.db'}")
        with live_client(settings) as client:
            assert ready(client) == 200
            disk.fill()
            assert wait_for(lambda: ready(client) == 503)
            answer = client.get("/ready").json()
            assert answer["checks"]["audit_writable"] is False
            assert "bytes free" in answer["audit_problem"]
            decided = client.post("/v1/decide", json=action())
            assert (decided.status_code, decided.json()["code"]) == (503, "audit_unavailable")
            disk.free()
            assert wait_for(lambda: ready(client) == 200, seconds=5)
            assert client.post("/v1/decide", json=action()).status_code == 200


def test_a_store_read_only_at_start_is_unwritable_until_it_is_writable(tmp_path: Path) -> None:
    """Started on a read-only file system the log starts unwritable (appends fail, the probe
    names the read-only mount) and becomes writable by itself once the mount is writable."""
    with small_disk(tmp_path / "disk") as disk:
        db = disk.path / "a.db"
        first = SqliteAuditLog(db, probe_ttl_s=0)
        first.start()
        asyncio.run(first.append(body(0)))
        first.close()
        disk.read_only(True)
        log = SqliteAuditLog(db, probe_ttl_s=0)
        log.start()
        try:
            assert not asyncio.run(log.writable())
            assert "read-only" in str(log.problem)
            with pytest.raises(AuditUnavailable):
                asyncio.run(log.append(body(1)))
            disk.read_only(False)
            assert asyncio.run(log.writable())
            assert asyncio.run(log.append(body(2))).index == 1
        finally:
            log.close()


def test_the_store_reports_what_its_probe_finds(tmp_path: Path) -> None:
    """On the store itself: writable, then not (a failed append, a failed probe), then again."""
    with small_disk(tmp_path / "disk") as disk:
        log = SqliteAuditLog(disk.path / "a.db", probe_ttl_s=0)
        log.start()
        try:
            assert asyncio.run(log.writable())
            disk.fill()
            with pytest.raises(AuditUnavailable):
                asyncio.run(log.append(body(1, action="x" * 8192)))
            assert not asyncio.run(log.writable())
            assert log.problem is not None
            disk.free()
            assert asyncio.run(log.writable())
            assert asyncio.run(log.append(body(2))).index == 0
            assert log.problem is None
        finally:
            log.close()
