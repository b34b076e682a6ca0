"""Readiness tells a saturated or wedged engine from a loaded one (core/decision/health.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.core.decision.admission import Admission
from maestro_gate.core.decision.health import EngineHealth
from maestro_gate.core.errors import EngineTimeout
from tests.conftest import action, make_settings, write_bundle
from tests.credentials import EVERYTHING, key_header, write_keys_file
from tests.fakes import ScriptedEngine
from tests.test_admission import SLOW_FOR_ONE_TOOL, Clock


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.mark.anyio
async def test_overrunning_evaluations_on_every_worker_saturate_the_engine() -> None:
    """As many evaluations past their deadline as workers: not free, until one of them ends."""
    admission = Admission(per_caller=4)
    health = EngineHealth(ScriptedEngine(), admission, workers=2, timeout_s=0.05)
    assert await health.check() is None
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    admission.enter("a").hold(first)
    assert health.up()
    admission.enter("b").hold(second)
    assert not health.up()
    assert "holding all 2 engine workers" in (await health.check() or "")
    first.set_result(None)
    await asyncio.sleep(0)
    assert health.up()
    assert await health.check() is None


@pytest.mark.anyio
async def test_a_probe_past_the_deadline_marks_the_engine_wedged_until_one_answers() -> None:
    """A timed-out probe makes the engine not free; the next probe, an interval on, clears it."""
    clock = Clock()
    engine = ScriptedEngine(error=EngineTimeout("late"))
    health = EngineHealth(engine, None, workers=2, timeout_s=0.05, clock=clock)
    assert "did not answer within 50 ms" in (await health.check() or "")
    assert not health.up()
    engine.error = None
    assert await health.check() is not None  # within the interval: no new probe
    assert len(engine.documents) == 1
    clock.now = 1.0
    assert await health.check() is None
    assert health.up()
    assert len(engine.documents) == 2


def test_ready_and_engine_up_report_workers_held_past_their_deadline(tmp_path: Path) -> None:
    """With its one worker held by an overrunning evaluation, /ready is 503 and engine_up 0."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/d.rego": SLOW_FOR_ONE_TOOL})
    keys = write_keys_file(tmp_path / "keys.json", {"agent": EVERYTHING})
    settings = make_settings(tmp_path, bundle, decision_timeout_ms=50, engine_workers=1)
    with TestClient(create_app(settings)) as client:
        agent = key_header(keys["agent"])
        assert client.get("/ready").status_code == 200
        slow = client.post("/v1/decide", json=action("slow.tool"), headers=agent)
        assert slow.json()["reasons"][0]["rule"] == "GATE.engine_timeout"
        busy = client.get("/ready")
        assert busy.status_code == 503
        assert busy.json()["checks"]["engine_free"] is False
        assert "past their deadline" in busy.json()["engine_problem"]
        metrics = client.get("/metrics", headers=agent).text
        assert 'maestro_engine_up{engine="embedded"} 0.0' in metrics
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # the slow evaluation ends by itself: ready again without traffic
        assert client.get("/ready").json()["checks"]["engine_free"] is True
        assert 'maestro_engine_up{engine="embedded"} 1.0' in client.get("/metrics").text
