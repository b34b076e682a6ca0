"""`maestro-gate policy check`: parse, built-in and reason-contract problems, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro_gate.authoring.check import check_directory, emitted_rule_ids
from maestro_gate.cli import main
from tests.conftest import ROOT, write_bundle

CATALOG = ROOT / "catalog"
L3 = "maestro/layers/l3_agent_frameworks/policy.rego"
L3_TEST = "maestro/layers/l3_agent_frameworks/policy_test.rego"

LAYER_REGO = """package maestro.layers.l3_agent_frameworks

import rego.v1

layer := "l3_agent_frameworks"

reason(rule, threats, message) := {"rule": rule, "layer": layer, "threats": threats,
  "message": message}

# METADATA
# title: Shell is never allowed
# custom:
#   rule: L3.shell_forbidden
#   layer: l3_agent_frameworks
#   threats: [T2]
deny contains reason("L3.shell_forbidden", ["T2"], "shell is forbidden") if {
  input.action == "shell.exec"
}

# METADATA
# title: Writes are sandboxed
# custom:
#   rule: L3.write_sandboxed
#   layer: l3_agent_frameworks
#   threats: [T2, T3]
obligations contains {"rule": "L3.write_sandboxed", "layer": layer, "threats": ["T2", "T3"],
  "message": "run in a sandbox"} if {
  input.action == "file.write"
}
"""

LAYER_TEST_REGO = """package maestro.layers.l3_agent_frameworks_test

import rego.v1

import data.maestro.layers.l3_agent_frameworks as l3

test_shell_is_denied if {
  some r in l3.deny with input as {"action": "shell.exec"}
  r.rule == "L3.shell_forbidden"
}
"""


def layered(tmp_path: Path, **replace: str) -> Path:
    """A bundle with one annotated L3 module and its test; keyword args replace file texts."""
    modules = {L3: LAYER_REGO, L3_TEST: LAYER_TEST_REGO}
    modules.update({path.replace("__", "/"): text for path, text in replace.items()})
    return write_bundle(tmp_path / "bundle", modules)


def problems_of(bundle: Path) -> list[str]:
    """Every problem `policy check` reports for `bundle`, as printed."""
    return [str(problem) for problem in check_directory(bundle, CATALOG)]


def test_clean_bundle_passes_and_cli_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle that parses, uses only supported built-ins and keeps the contract passes."""
    bundle = layered(tmp_path)
    assert problems_of(bundle) == []
    assert main(["policy", "check", str(bundle), "--catalog", str(CATALOG)]) == 0
    assert "ok: 1 modules and 1 test files" in capsys.readouterr().out


def test_parse_error_in_a_test_file_names_file_and_line(tmp_path: Path) -> None:
    """A *_test.rego that does not parse is reported with its file and line."""
    broken = LAYER_TEST_REGO + "\ntest_unclosed if {\n  true\n"
    line = broken.splitlines().index("test_unclosed if {") + 1
    problems = problems_of(layered(tmp_path, **{L3_TEST.replace("/", "__"): broken}))
    assert problems == [f"{L3_TEST}:{line}: this is unclosed [parse_error]"]


def test_unsupported_builtin_in_a_test_file_is_refused(tmp_path: Path) -> None:
    """A built-in the embedded engine lacks is refused even when only a test calls it."""
    test = LAYER_TEST_REGO + '\ntest_cidr if { net.cidr_contains("10.0.0.0/8", "10.1.2.3") }\n'
    problems = problems_of(layered(tmp_path, **{L3_TEST.replace("/", "__"): test}))
    assert problems == [
        f"{L3_TEST}: calls net.cidr_contains, which the embedded engine lacks [unsupported_builtin]"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rule: L3.shell_forbidden", "rule: L3.ShellForbidden", "rule id does not match"),
        ("threats: [T2]\n", "threats: [T2, T999]\n", "unknown threat 'T999'"),
        (
            "layer: l3_agent_frameworks\n#   threats: [T2]\n",
            "layer: l4_deployment_infrastructure\n#   threats: [T2]\n",
            "layer l4_deployment_infrastructure but package",
        ),
    ],
    ids=["bad-rule-id", "unknown-threat", "layer-not-package"],
)
def test_annotation_contract_violations_are_reported(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """Bad rule ids, threats missing from the catalog and wrong layers are contract problems."""
    assert old in LAYER_REGO
    problems = problems_of(
        layered(tmp_path, **{L3.replace("/", "__"): LAYER_REGO.replace(old, new)})
    )
    matching = [p for p in problems if expected in p]
    assert matching, problems
    assert all(p.startswith(f"{L3}:") and p.endswith("[contract]") for p in matching)


def test_emitted_rule_without_annotation_is_reported_with_its_line(tmp_path: Path) -> None:
    """A deny that emits a rule id no METADATA block annotates is refused at that line."""
    extra = '\nhitl contains reason("L3.unannotated_rule", ["T2"], "ask") if input.x\n'
    problems = problems_of(layered(tmp_path, **{L3.replace("/", "__"): LAYER_REGO + extra}))
    line = (LAYER_REGO + extra).splitlines().index(extra.strip()) + 1
    assert problems == [
        f"{L3}:{line}: emits L3.unannotated_rule but no # METADATA block annotates "
        "custom.rule: L3.unannotated_rule [contract]"
    ]


def test_emitted_rule_with_malformed_id_is_reported(tmp_path: Path) -> None:
    """A `"rule": ...` literal in a layer package must be a well-formed rule id."""
    extra = '\nbad := {"rule": "l3-bad", "layer": layer}\n'
    problems = problems_of(layered(tmp_path, **{L3.replace("/", "__"): LAYER_REGO + extra}))
    assert len(problems) == 1
    assert "emits rule id 'l3-bad'" in problems[0]


def test_emitted_rule_ids_reads_helpers_and_object_literals() -> None:
    """Ids come from reason(...) calls and `"rule":` literals, each with its line."""
    assert list(emitted_rule_ids(LAYER_REGO)) == [
        (16, "L3.shell_forbidden"),
        (26, "L3.write_sandboxed"),
    ]


def test_cli_lists_problems_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check` prints each problem, then a FAIL summary, and exits 1."""
    broken = LAYER_REGO.replace("threats: [T2]\n", "threats: [T404]\n")
    bundle = layered(tmp_path, **{L3.replace("/", "__"): broken})
    assert main(["policy", "check", str(bundle), "--catalog", str(CATALOG)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any("unknown threat 'T404'" in line for line in out)
    assert out[-1] == f"FAIL: 1 problem(s) in 1 file(s) under {bundle}"


def test_missing_manifest_is_a_problem(tmp_path: Path) -> None:
    """A directory without .manifest is not a bundle and says so."""
    bundle = layered(tmp_path)
    (bundle / ".manifest").unlink()
    assert problems_of(bundle) == [f"bundle: bundle {bundle} has no .manifest [bundle_error]"]


def test_engine_opa_accepts_a_builtin_only_the_embedded_engine_lacks(tmp_path: Path) -> None:
    """net.cidr_contains is refused for the embedded engine and accepted for OPA's."""
    test = LAYER_TEST_REGO + '\ntest_cidr if { net.cidr_contains("10.0.0.0/8", "10.1.2.3") }\n'
    bundle = layered(tmp_path, **{L3_TEST.replace("/", "__"): test})
    assert [p.code for p in check_directory(bundle, CATALOG)] == ["unsupported_builtin"]
    for engine in ("opa", "opa-inprocess"):
        assert check_directory(bundle, CATALOG, engine) == []  # type: ignore[arg-type]


def test_engine_opa_refuses_a_function_it_lacks_at_its_line(tmp_path: Path) -> None:
    """OPA's `undefined function` compile error becomes unsupported_builtin at file:line."""
    test = LAYER_TEST_REGO + '\ntest_missing if {\n  crypto.no_such_hash("x")\n}\n'
    line = test.splitlines().index('  crypto.no_such_hash("x")') + 1
    bundle = layered(tmp_path, **{L3_TEST.replace("/", "__"): test})
    assert [str(p) for p in check_directory(bundle, CATALOG, "opa")] == [
        f"{L3_TEST}:{line}: calls crypto.no_such_hash, which OPA's engine lacks "
        "[unsupported_builtin]"
    ]


def test_cli_engine_flag_checks_for_the_engine_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check --engine opa-inprocess` passes a bundle OPA runs, and says for which engine."""
    test = LAYER_TEST_REGO + '\ntest_cidr if { net.cidr_contains("10.0.0.0/8", "10.1.2.3") }\n'
    bundle = layered(tmp_path, **{L3_TEST.replace("/", "__"): test})
    args = ["policy", "check", str(bundle), "--catalog", str(CATALOG)]
    assert main([*args, "--engine", "opa-inprocess"]) == 0
    assert "pass policy check for the opa-inprocess engine" in capsys.readouterr().out
    assert main([*args, "--engine", "embedded"]) == 1
    assert "which the embedded engine lacks [unsupported_builtin]" in capsys.readouterr().out
