"""OPA's own engine in process (`opa-inprocess`): loading, refusal, deadlines, threads, service."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.core.errors import BundleError, EngineError, EngineTimeout, NotReady
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.inprocess import InProcessOpaEngine
from tests.conftest import POLICIES, live_client, make_settings, write_bundle

ECHO = "package maestro.decision\n\nresult := input\n"

SLOW_FOR_ONE_TOOL = """package maestro.decision

import rego.v1

# About a second on OPA, without building a large value.
slow if {
  input.action == "slow"
  some i in numbers.range(1, 300)
  some j in numbers.range(1, 300)
  i * j == -1
}

result := {"decision": "allow", "reasons": [], "obligations": [], "layers": {}} if not slow
"""

COLLECTOR = "spiffe://corp.example/agent/collector-web"
WEB_SEARCH: dict[str, Any] = {
    "kind": "agent_action",
    "subject": {"id": COLLECTOR},
    "action": "web_search",
    "arguments": {"max_results": 5},
}


def _engine(tmp_path: Path, modules: dict[str, str], workers: int = 1) -> InProcessOpaEngine:
    engine = InProcessOpaEngine(workers=workers)
    engine.load(read_bundle(write_bundle(tmp_path / "b", modules)))
    return engine


@pytest.mark.anyio
async def test_input_reaches_the_policy_unchanged(tmp_path: Path) -> None:
    """The policy sees exactly the document it was given, nested values and unicode included."""
    engine = _engine(tmp_path, {"maestro/decision/echo.rego": ECHO})
    document = {"a": 1, "b": -(2**53), "c": 1.5, "n": {"l": [None, "✓ 𝄞", {}]}, "t": True}
    assert (await engine.evaluate(document, timeout_s=5)).value == document
    engine.close()


@pytest.mark.anyio
async def test_the_shipped_bundle_decides_a_request(tmp_path: Path) -> None:
    """The bundle in policies/ loads and allows an ordinary web search on OPA's engine."""
    engine = InProcessOpaEngine(workers=1)
    info = engine.load(read_bundle(POLICIES))
    result = await engine.evaluate({**WEB_SEARCH, "state": {}}, timeout_s=5)
    assert result.value["decision"] == "allow"
    assert result.bundle == info == engine.active_bundle()
    engine.close()


@pytest.mark.parametrize(
    ("source", "code", "row"),
    [
        ("package maestro.decision\nresult := {\n", None, None),
        ("package maestro.decision\n\nresult := nosuch.builtin(1)\n", "unsupported_builtin", 3),
        ("package maestro.decision\n\nresult := x\n", "compile_error", 3),
    ],
)
def test_a_bundle_opa_cannot_compile_is_refused_where_it_fails(
    tmp_path: Path, source: str, code: str | None, row: int | None
) -> None:
    """A parse error, an unknown function or an unsafe variable is a BundleError naming the row."""
    engine = InProcessOpaEngine(workers=1)
    with pytest.raises(BundleError) as raised:
        engine.load(read_bundle(write_bundle(tmp_path / "b", {"maestro/decision/d.rego": source})))
    assert "maestro/decision/d.rego" in raised.value.message
    if code is not None:
        assert raised.value.errors is not None
        assert raised.value.errors[0]["code"] == code
        assert raised.value.errors[0]["location"] == {"file": "maestro/decision/d.rego", "row": row}
    assert engine.active_bundle() is None
    engine.close()


@pytest.mark.anyio
async def test_a_broken_bundle_never_replaces_the_active_one(tmp_path: Path) -> None:
    """After a refused load, decisions are still made with the bundle that was active."""
    engine = _engine(tmp_path, {"maestro/decision/echo.rego": ECHO})
    good = engine.active_bundle()
    broken = write_bundle(tmp_path / "bad", {"maestro/decision/d.rego": "package x\ny := z\n"})
    with pytest.raises(BundleError):
        engine.load(read_bundle(broken))
    assert engine.active_bundle() == good
    assert (await engine.evaluate({"still": "echo"}, timeout_s=5)).value == {"still": "echo"}
    engine.close()


@pytest.mark.anyio
async def test_run_time_errors_and_undefined_results_are_engine_errors(tmp_path: Path) -> None:
    """A conflict, a failing built-in or an undefined decision raises EngineError, never a value."""
    source = """package maestro.decision

import rego.v1

result := 1 if input.conflict
result := 2 if input.conflict
result := 1 / 0 if input.divide
"""
    engine = _engine(tmp_path, {"maestro/decision/d.rego": source})
    for document, words in (
        ({"conflict": True}, "multiple outputs"),
        ({"divide": True}, "divide by zero"),
        ({}, "undefined"),
    ):
        with pytest.raises(EngineError, match=words):
            await engine.evaluate(document, timeout_s=5)
    engine.close()


@pytest.mark.anyio
async def test_an_input_go_cannot_take_is_an_engine_error(tmp_path: Path) -> None:
    """A lone surrogate cannot cross into Go as UTF-8: the evaluation fails instead."""
    engine = _engine(tmp_path, {"maestro/decision/echo.rego": ECHO})
    with pytest.raises(EngineError):
        await engine.evaluate({"s": "\ud800"}, timeout_s=5)
    engine.close()


@pytest.mark.anyio
async def test_without_a_bundle_the_engine_is_not_ready() -> None:
    """Before a load there is nothing to decide with: NotReady, and ready() is false."""
    engine = InProcessOpaEngine(workers=1)
    assert not await engine.ready()
    with pytest.raises(NotReady):
        await engine.evaluate({}, timeout_s=1)
    engine.close()


@pytest.mark.anyio
async def test_overrunning_evaluations_do_not_block_later_decisions(tmp_path: Path) -> None:
    """With its only worker held past a deadline, the engine decides the next request at once."""
    engine = _engine(tmp_path, {"maestro/decision/d.rego": SLOW_FOR_ONE_TOOL})
    with pytest.raises(EngineTimeout):
        await engine.evaluate({"action": "slow"}, timeout_s=0.05)
    result = await engine.evaluate({"action": "fast"}, timeout_s=5.0)
    assert result.value["decision"] == "allow"
    assert engine.overrunning == 0  # the held thread belongs to threads no longer used
    engine.close()


def test_concurrent_evaluations_from_many_threads_each_get_their_own_answer(
    tmp_path: Path,
) -> None:
    """Evaluations on every worker at once, from several loops, never mix inputs or results."""
    engine = _engine(tmp_path, {"maestro/decision/echo.rego": ECHO}, workers=2)
    failures: list[str] = []

    def caller(n: int) -> None:
        async def run() -> None:
            documents = [{"caller": n, "i": i, "pad": "x" * (i * 37 % 900)} for i in range(150)]
            results = await asyncio.gather(*(engine.evaluate(d, timeout_s=30) for d in documents))
            failures.extend(
                f"{d} -> {r.value}" for d, r in zip(documents, results, strict=True) if r.value != d
            )

        asyncio.run(run())

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    engine.close()


@pytest.mark.anyio
async def test_a_reload_swaps_the_bundle_whole_under_load(tmp_path: Path) -> None:
    """Decisions running across a reload see the old bundle or the new one, never a mixture."""
    engine = InProcessOpaEngine(workers=2)
    old = 'package maestro.decision\n\nresult := {"a": "old", "b": data.v}\n'
    engine.load(
        read_bundle(
            write_bundle(tmp_path / "old", {"maestro/decision/d.rego": old}, data={"v": "old"})
        )
    )
    new_root = write_bundle(
        tmp_path / "new",
        {"maestro/decision/d.rego": old.replace('"old"', '"new"')},
        data={"v": "new"},
        revision="test-2",
    )
    reload = asyncio.get_running_loop().run_in_executor(None, engine.load, read_bundle(new_root))
    seen: set[tuple[str, str]] = set()
    while not reload.done():
        value = (await engine.evaluate({}, timeout_s=5)).value
        seen.add((value["a"], value["b"]))
    await reload
    last = (await engine.evaluate({}, timeout_s=5)).value
    seen.add((last["a"], last["b"]))
    assert seen <= {("old", "old"), ("new", "new")}
    assert ("new", "new") in seen
    active = engine.active_bundle()
    assert active is not None
    assert active.revision == "test-2"
    engine.close()


def test_the_service_decides_on_opa_inprocess_and_names_it(tmp_path: Path) -> None:
    """With engine opa-inprocess, /v1/decide, /v1/status and the metrics name OPA's engine."""
    settings = make_settings(tmp_path, POLICIES, engine="opa-inprocess")
    with live_client(settings) as client:
        decided = client.post("/v1/decide", json=WEB_SEARCH)
        status = client.get("/v1/status")
        metrics = client.get("/metrics")
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision"] == "allow"
    assert decided.json()["policy"]["engine"] == "opa-inprocess"
    assert status.json()["engine"] == "opa-inprocess"
    assert 'maestro_engine_up{engine="opa-inprocess"} 1.0' in metrics.text


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"
