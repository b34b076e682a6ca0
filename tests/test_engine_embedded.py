"""The embedded engine: input conversion, bundle reading, built-in refusal, atomic activation."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import regopy

from maestro_gate.core.errors import BundleError, EngineError, EngineTimeout
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, read_bundle, unsupported_builtins
from maestro_gate.engine.embedded import EmbeddedEngine, compile_bundle
from maestro_gate.engine.native_eval import evaluate
from tests.conftest import write_bundle

DOCUMENTS: list[Any] = [
    {},
    {"a": 1, "b": -(2**53), "c": 1.5, "d": True, "e": False, "f": None},
    {"nested": {"list": [1, "two", [3, {"four": 4}]], "empty": [], "obj": {}}},
    {"unicode": "héllo ✓ 𝄞", "key ✓": "v"},
    [1, 2, {"x": [None]}],
    "just a string",
]


ECHO = """package maestro.decision

result := input
"""
ECHO_AT = DECISION_ENTRYPOINT.encode()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any], Any]:
    """Evaluate a bundle whose decision is its input, the way the engine evaluates decisions."""
    root = write_bundle(tmp_path_factory.mktemp("echo"), {"maestro/decision/echo.rego": ECHO})
    rego, program = compile_bundle(read_bundle(root))
    return lambda document: evaluate(rego, program, ECHO_AT, document)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_input_reaches_the_policy_unchanged(echo: Callable[[Any], Any], document: Any) -> None:
    """The policy sees exactly the document regopy's own Input would give it."""
    assert echo(document) == document


def test_large_input_reaches_the_policy_unchanged(echo: Callable[[Any], Any]) -> None:
    """A session history of many entries (the service's largest input part) arrives whole."""
    entry = {"kind": "agent_action", "action": "kb_search", "classification": "internal"}
    document = {"state": {"session": {"recent": [entry | {"n": i} for i in range(200)]}}}
    assert echo(document) == document


def test_inputs_evaluated_on_several_threads_at_once_arrive_whole(tmp_path: Path) -> None:
    """rego-cpp builds and evaluates with the GIL released: concurrent decisions must not mix."""
    root = write_bundle(tmp_path / "b", {"maestro/decision/echo.rego": ECHO})

    def round_trip(worker: int) -> list[bool]:
        rego, program = compile_bundle(read_bundle(root))
        seen = []
        for i in range(40):
            document = {"w": worker, "recent": [{"n": i, "s": f"{worker}-{j}"} for j in range(20)]}
            seen.append(evaluate(rego, program, ECHO_AT, document) == document)
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(round_trip, range(8)))
    assert all(all(r) for r in results)
    assert sum(len(r) for r in results) == 8 * 40


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({1: "x"}, "object keys must be strings"),
        ({"n": 2**64}, "out of range"),
        ({"s": {1, 2}}, "cannot pass a set"),
        ({"b": b"bytes"}, "cannot pass a bytes"),
        ({"subject": "agent-a\x00agent-b"}, "NUL character"),
        ({"agent-a\x00": 1}, "NUL character"),
        (json.loads("[" * 400 + "]" * 400), "nested too deeply"),
    ],
)
def test_inputs_the_engine_cannot_take_are_refused(
    echo: Callable[[Any], Any], document: Any, says: str
) -> None:
    """A value outside JSON's types, or nested past any request's depth, is an EngineError."""
    with pytest.raises(EngineError, match=says):
        echo(document)


def test_input_strings_work_in_sprintf_and_equality(tmp_path: Path) -> None:
    """Input strings compare equal to literals and format with sprintf."""
    policy = """package maestro.decision

result := {"equal": input.k == "shell.exec", "message": sprintf("tool %s", [input.k])}
"""
    root = write_bundle(tmp_path / "b", {"maestro/decision/strings.rego": policy})
    rego, program = compile_bundle(read_bundle(root))
    result = evaluate(rego, program, ECHO_AT, {"k": "shell.exec"})
    assert result == {"equal": True, "message": "tool shell.exec"}


@pytest.mark.anyio
async def test_echoed_quote_fails_closed(tmp_path: Path) -> None:
    """A result echoing an input string with a quote is refused by the engine, not passed on."""
    rego = DECISION_ECHO
    engine = EmbeddedEngine(workers=1)
    engine.load(read_bundle(write_bundle(tmp_path / "b", {"maestro/decision/decision.rego": rego})))
    with pytest.raises(EngineError):
        await engine.evaluate({"action": 'say "hi"'}, timeout_s=5)
    assert (await engine.evaluate({"action": "hi"}, timeout_s=5)).value["decision"] == "deny"
    engine.close()


DECISION_ECHO = """package maestro.decision

import rego.v1

result := {"decision": "deny", "reasons": [{"rule": "L3.x", "layer": "l3", "threats": [],
  "message": sprintf("tool %s", [input.action])}], "obligations": [], "layers": {}}
"""


def test_read_bundle_places_data_by_directory(tmp_path: Path) -> None:
    """data.json files land at the data path of their directory, as in OPA bundles."""
    root = write_bundle(tmp_path / "b")
    (root / "maestro" / "registry").mkdir(parents=True)
    (root / "maestro" / "registry" / "data.json").write_text('{"agents": {"a": 1}}')
    bundle = read_bundle(root)
    assert bundle.data == {"maestro": {"registry": {"agents": {"a": 1}}}}
    assert bundle.revision == "test-1"


def test_registry_file_replaces_the_bundled_registry(tmp_path: Path) -> None:
    """A deployer's registry file replaces data.maestro.registry and changes the digest."""
    root = write_bundle(tmp_path / "b")
    (root / "maestro" / "registry").mkdir(parents=True)
    (root / "maestro" / "registry" / "data.json").write_text('{"agents": {"a": 1}}')
    mine = tmp_path / "registry.json"
    mine.write_text(json.dumps({"agents": {"b": 2}}))
    swapped = read_bundle(root, mine)
    assert swapped.data["maestro"]["registry"] == {"agents": {"b": 2}}
    assert swapped.digest != read_bundle(root).digest


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "has no .manifest"),
        ({".manifest": "{"}, "not valid JSON"),
        ({".manifest": '{"roots": ["maestro"]}'}, "revision"),
        ({".manifest": '{"revision": "r"}', "x/data.json": "[oops"}, "x/data.json"),
    ],
)
def test_bad_bundles_are_refused_with_a_reason(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    """A missing or invalid manifest or data file is a BundleError saying what is wrong."""
    root = tmp_path / "b"
    (root / "p").mkdir(parents=True)
    (root / "p" / "p.rego").write_text("package p\n")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    with pytest.raises(BundleError, match=message):
        read_bundle(root)


def test_builtin_scan_ignores_user_functions_imports_and_strings() -> None:
    """Only calls that are no user function, import alias or data ref are checked."""
    source = """package p
import rego.v1
import data.maestro.lib
f(x) := x
a := f(1)
b := lib.g(2)
c := data.q.h(3)
d := "net.cidr_contains(1)"  # net.cidr_contains(2)
e := count([1])
g := net.cidr_contains("10.0.0.0/8", "10.0.0.1")
"""
    rego = regopy.Interpreter()
    assert unsupported_builtins({"p.rego": source}, rego.is_builtin) == [
        ("p.rego", "net.cidr_contains")
    ]


@pytest.mark.parametrize(
    "rego",
    [
        "package maestro.decision\nresult := {",
        "package maestro.decision\nimport rego.v1\nresult := rego.metadata.rule()",
    ],
)
def test_a_broken_bundle_never_replaces_the_active_one(tmp_path: Path, rego: str) -> None:
    """Loading a bundle that fails to compile or check raises and keeps the old bundle."""
    engine = EmbeddedEngine(workers=1)
    good = engine.load(read_bundle(write_bundle(tmp_path / "good", revision="good")))
    broken = write_bundle(tmp_path / "bad", {"maestro/decision/decision.rego": rego})
    with pytest.raises(BundleError):
        engine.load(read_bundle(broken))
    assert engine.active_bundle() == good
    engine.close()


SLOW_FOR_ONE_TOOL = """package maestro.decision

import rego.v1

slow if {
  input.action == "slow"
  count([1 | some i in numbers.range(1, 1000000)]) > 0
}

result := {"decision": "allow", "reasons": [], "obligations": [], "layers": {}} if not slow
"""


@pytest.mark.anyio
async def test_overrunning_evaluations_do_not_block_later_decisions(tmp_path: Path) -> None:
    """With its only worker held past a deadline, the engine still decides the next request."""
    bundle = write_bundle(tmp_path / "b", {"maestro/decision/decision.rego": SLOW_FOR_ONE_TOOL})
    engine = EmbeddedEngine(workers=1)
    engine.load(read_bundle(bundle))
    with pytest.raises(EngineTimeout):
        await engine.evaluate({"action": "slow"}, timeout_s=0.05)
    result = await engine.evaluate({"action": "fast"}, timeout_s=5.0)
    assert result.value["decision"] == "allow"
    engine.close()


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"
