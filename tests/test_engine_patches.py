"""The rego-cpp performance fixes (engine/_patches.cc): in effect, verifying, and changing nothing.

The fixes interpose symbols process-wide, so the comparison with rego-cpp as shipped runs in a
subprocess started with MAESTRO_GATE_ENGINE_PATCHES=off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import regopy

from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.core.errors import EngineError
from maestro_gate.engine import patches
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, read_bundle
from maestro_gate.engine.embedded import compile_bundle
from maestro_gate.engine.native_eval import evaluate
from tests.conftest import write_bundle

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = DECISION_ENTRYPOINT.encode()

# Numbers go through the stream formatting whose locale facets the first fix reads.
ECHO = """package maestro.decision

result := {"input": input, "keys": {k | some k in numbers}, "text": sprintf("%v", [numbers])}

numbers := [1, -7, 0.1, 2.5e-7, 1e300, 123456789.125, 3]
"""

# Keys of every scalar type, looked up, compared and tested for membership, by the second fix's
# fast path (strings, keys, integers, booleans, null) and around it (floats, arrays, objects);
# built-ins that succeed and, with input.text not a number, one that fails (the third fix).
KEYS = """package maestro.decision

import rego.v1

table := {1: "i", "1": "s", true: "t", false: "f", null: "n", 2.5: "r", "k": {"x": [1]}, "": "e"}

mixed := {1, "1", true, false, null, 2.5, [1, "a"], {"a": 1}, ""}

probes := [1, "1", true, false, null, 2.5, "k", "", "missing", 7, [1, "a"], {"a": 1}]

# String keys that differ only by quotes, and string probes against them (values only: rego-cpp
# does not escape an echoed string holding a quote).
named := {"a": 1, "\\"a\\"": 2, "a\\"": 3, "\\"": 4, "": 5, "b c": 6, "\\"\\"": 7}

names := ["a", "\\"a\\"", "a\\"", "\\"", "", "b c", "\\"\\"", "missing", 1, true]

member(p) if p in mixed

result := {
	"found": [object.get(table, p, "-") | some p in probes],
	"indexed": [v | some p in probes; v := table[p]],
	"named": {i: v | some i, p in names; v := named[p]},
	"named_input": {i: v | some i, p in names; v := input.named[p]},
	"quoted": [v | v := input.quoted_only["a"]],
	"members": [p | some p in probes; member(p)],
	"input": [object.get(input, p, "-") | some p in probes],
	"compared": [[p == q, p < q] | some p in probes; some q in probes],
	"number": to_number(input.text),
	"count": count(mixed),
}
"""

# Run under MAESTRO_GATE_ENGINE_PATCHES=off: the same evaluations on rego-cpp as shipped.
DECIDE_ALL = """
import json, sys
from pathlib import Path
from maestro_gate.engine import patches
from tests.test_engine_patches import decide_all
job = json.load(sys.stdin)
results = decide_all({k: Path(v) for k, v in job["bundles"].items()}, job["documents"])
print(json.dumps({"status": patches.status(), "results": results}))
"""


def documents() -> list[dict[str, Any]]:
    """Every scenario request as the service passes it to the engine, plus the bench bodies."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bodies import BODIES

    scenarios = sorted(ROOT.glob("tests/scenarios/*.json"))
    bodies = [json.loads(path.read_text())["request"] for path in scenarios]
    out = []
    for body in [*bodies, *BODIES.values()]:
        document = REQUEST_ADAPTER.validate_python(body).model_dump(mode="json", exclude_none=True)
        document["state"] = {"session": {"recent": [{"action": "kb_search", "n": 1.5}]}}
        out.append(document)
    return out


def decide_all(bundles: dict[str, Path], inputs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The results in this process: with the fixes here, without them in DECIDE_ALL's."""
    results = {}
    for name, root in bundles.items():
        rego, program = compile_bundle(read_bundle(root))
        results[name] = [outcome(rego, program, d) for d in inputs]
    return results


def outcome(rego: regopy.Interpreter, program: Any, document: dict[str, Any]) -> Any:
    """The decision document, or the engine's error message."""
    try:
        return evaluate(rego, program, ENTRYPOINT, document)
    except EngineError as exc:
        return {"error": str(exc)}


@pytest.fixture(scope="module")
def echo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle whose result echoes its input next to formatted numbers and a set of them."""
    return write_bundle(tmp_path_factory.mktemp("echo"), {"maestro/decision/echo.rego": ECHO})


@pytest.fixture(scope="module")
def keys_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle that looks up, compares and collects keys of every type, and calls built-ins."""
    return write_bundle(tmp_path_factory.mktemp("keys"), {"maestro/decision/keys.rego": KEYS})


def test_the_fixes_are_loaded_and_in_effect() -> None:
    """Loaded by the package root before rego-cpp, so rego-cpp's own calls reach them."""
    rego, program = compile_bundle(read_bundle(ROOT / "policies"))
    document = documents()[0]
    before = patches.status()
    evaluate(rego, program, ENTRYPOINT, document)
    first = patches.status()
    evaluate(rego, program, ENTRYPOINT, document)
    evaluate(rego, program, ENTRYPOINT, document)
    after = patches.status()
    assert after["loaded"] is True
    assert after["streams_patched"] is True
    assert after["keys_patched"] is True
    assert after["calls_patched"] is True
    assert after["terms_patched"] is True
    assert after["inputs_patched"] is True
    assert after["locals_patched"] is True
    assert after["lookups_patched"] is True
    assert after["booleans_patched"] is True
    assert first["verified"] == before["verified"] + 1  # a new bundle: verified on first use
    assert after["verified"] == first["verified"]
    assert after["verify_skipped"] == first["verify_skipped"] + 2


def test_a_recompiled_bundle_is_verified_again() -> None:
    """Compiling forgets every verified bundle: a new one may sit where a freed one was."""
    bundle = read_bundle(ROOT / "policies")
    rego, program = compile_bundle(bundle)
    evaluate(rego, program, ENTRYPOINT, documents()[0])
    verified = patches.status()["verified"]
    compile_bundle(bundle)
    evaluate(rego, program, ENTRYPOINT, documents()[0])
    assert patches.status()["verified"] == verified + 1


def test_queries_outside_the_gates_evaluate_are_verified_every_time(echo_root: Path) -> None:
    """regopy's own query path (policy test, conformance) keeps rego-cpp's check per query."""
    bundle = read_bundle(echo_root)
    rego, program = compile_bundle(bundle)
    before = patches.status()
    for _ in range(3):
        rego.set_input(regopy.Input({"a": 1}))
        output = rego.query_bundle_entrypoint(program, DECISION_ENTRYPOINT)
        assert json.loads(str(output))["expressions"][0]["input"] == {"a": 1}
    after = patches.status()
    assert after["verified"] == before["verified"] + 3
    assert after["verify_skipped"] == before["verify_skipped"]


def test_decisions_are_identical_to_rego_cpp_as_shipped(echo_root: Path, keys_root: Path) -> None:
    """Every scenario and bench request decides the same, byte for byte, with the fixes off."""
    bundles = {"maestro": ROOT / "policies", "echo": echo_root, "keys": keys_root}
    named = {"a": 1, '"a"': 2, 'a"': 3, '"': 4, "": 5, "b c": 6, '""': 7}
    numbers = [
        {"text": "12.5", "1": "s", "k": True, "": 0, "named": named, "quoted_only": {'"a"': 2}},
        {"text": "twelve", "missing": None},
    ]
    deep = {"a": [{"b": [1, {"c": None, "d": [[], {}]}], "e": 2.5}, "x", [True, False]]}
    inputs = [*documents(), {**deep, "text": "3", "deep": deep}, *numbers]
    job = json.dumps({"bundles": {k: str(v) for k, v in bundles.items()}, "documents": inputs})
    env = os.environ | {patches.ENVIRONMENT_VARIABLE: "off"}
    shipped = subprocess.run(
        [sys.executable, "-c", DECIDE_ALL],
        input=job,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    unpatched = json.loads(shipped.stdout)
    assert unpatched["status"] == {"loaded": False, "reason": "MAESTRO_GATE_ENGINE_PATCHES=off"}
    patched = decide_all(bundles, inputs)
    assert len(inputs) > 10
    assert {r.get("decision") for r in patched["maestro"]} >= {"allow", "deny"}
    assert json.dumps(patched, sort_keys=True) == json.dumps(unpatched["results"], sort_keys=True)
    assert patched["echo"][0]["text"] == unpatched["results"]["echo"][0]["text"]
    assert patched["echo"][-3]["input"]["deep"]["a"][0]["b"][1]["d"] == [[], {}]
    number, not_a_number = patched["keys"][-2:]
    assert number["number"] == 12.5
    assert number["input"][1] == "s"
    assert len(number["compared"]) == 144
    every_name = {str(i): i + 1 for i in range(7)}  # each string finds its own key, and only it
    assert number["named"] == every_name
    # Input keys holding a quote are not found by rego-cpp as shipped either (the identity above).
    unquoted = {str(v - 1): v for k, v in named.items() if '"' not in k}
    assert unquoted.items() <= number["named_input"].items()
    # rego-cpp compares keys with quotes added where missing, so an input key spelled with quotes
    # answers for the bare name: a quirk the lookup fix keeps.
    assert number["quoted"] == [2]
    assert "error" in not_a_number  # to_number("twelve") fails: strict built-in errors


OTHER_BUILD = "sha256=" + "A" * 43


@pytest.mark.parametrize(
    ("environ", "version", "library", "refused"),
    [
        ({}, "1.5.2", patches.CHECKED_LIBRARY, None),
        ({}, "1.6.0", patches.CHECKED_LIBRARY, "checked with regopy 1.5.2, found 1.6.0"),
        ({}, None, None, "regopy is not installed"),
        ({"MAESTRO_GATE_ENGINE_PATCHES": "off"}, "1.5.2", None, "MAESTRO_GATE_ENGINE_PATCHES=off"),
        ({"MAESTRO_GATE_ENGINE_PATCHES": "on"}, "1.5.2", patches.CHECKED_LIBRARY, None),
        ({}, "1.5.2", OTHER_BUILD, f"found librego_shared.so {OTHER_BUILD}"),
        ({}, "1.5.2", None, "found librego_shared.so missing"),
    ],
)
def test_the_fixes_load_only_with_the_regopy_build_they_were_checked_with(
    environ: dict[str, str], version: str | None, library: str | None, refused: str | None
) -> None:
    """Another rego-cpp, or another build of it, may lay its objects out differently."""
    reason = patches.refusal(environ, version, library)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason


def test_the_installed_regopy_is_the_checked_build() -> None:
    """make test installs the wheel the fixes were read off, so they are in effect here."""
    assert patches.status()["loaded"] is True


def test_the_digest_is_of_the_library_file_on_disk(tmp_path: Path) -> None:
    """The installed library's bytes give the checked digest; one changed byte refuses the fixes."""
    from importlib import metadata

    installed = Path(str(metadata.distribution("regopy").locate_file("regopy/librego_shared.so")))
    assert patches.file_digest(installed) == patches.CHECKED_LIBRARY
    changed = tmp_path / "librego_shared.so"
    data = bytearray(installed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    reason = patches.refusal({}, "1.5.2", patches.file_digest(changed))
    assert reason is not None
    assert "found librego_shared.so sha256=" in reason
