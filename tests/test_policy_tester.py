"""`maestro-gate policy test`: the runner behind it, on small bundles written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro_gate.authoring.tester import format_report, run_tests

POLICY = """package demo.authz

import rego.v1

default allow := false

allow if input.user == data.demo.admin
"""

TESTS = """package demo.authz_test

import rego.v1

import data.demo.authz

test_admin_allowed if {
	authz.allow with input.user as "root"
}

test_guest_allowed if {
	authz.allow with input.user as "guest"
}

test_divides_by_zero if {
	x := 1 / 0
	x > 0
}

test_not_boolean := "yes"
"""


def write_bundle(root: Path, tests: str = TESTS, manifest: bool = True) -> Path:
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "authz.rego").write_text(POLICY)
    (root / "demo" / "authz_test.rego").write_text(tests)
    (root / "demo" / "data.json").write_text('{"admin": "root"}')
    if manifest:
        (root / ".manifest").write_text('{"revision": "t", "roots": ["demo"]}')
    return root


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle with one passing, two failing and one erroring test."""
    return write_bundle(tmp_path / "bundle")


def outcomes(path: Path, pattern: str | None = None) -> dict[str, str]:
    return {r.name: r.outcome for r in run_tests(path, pattern).results}


def test_passing_test_passes_with_data_placed_by_directory(bundle: Path) -> None:
    """A test reading data.json at its directory's path passes."""
    assert outcomes(bundle)["test_admin_allowed"] == "pass"


def test_undefined_or_non_true_test_fails(bundle: Path) -> None:
    """Undefined and non-boolean test values are failures, not passes."""
    found = outcomes(bundle)
    assert found["test_guest_allowed"] == "fail"
    assert found["test_not_boolean"] == "fail"


def test_evaluation_error_is_reported_as_error(bundle: Path) -> None:
    """A test whose evaluation errors is an error."""
    assert outcomes(bundle)["test_divides_by_zero"] == "error"


def test_summary_line_counts_and_failures_name_file_and_query(bundle: Path) -> None:
    """The report lists failures by file and query and closes with the counts."""
    report = run_tests(bundle)
    text = format_report(report, verbose=False)
    lines = text.splitlines()
    assert lines[-1] == "1 passed, 2 failed, 1 errors"
    test_file = (bundle / "demo" / "authz_test.rego").as_posix()
    assert f"FAIL: {test_file}: data.demo.authz_test.test_guest_allowed" in lines
    assert f"ERROR: {test_file}: data.demo.authz_test.test_divides_by_zero" in lines
    assert not any(line.startswith("PASS") for line in lines)
    assert not report.ok


def test_verbose_report_lists_passes(bundle: Path) -> None:
    """Verbose output names passing tests too."""
    text = format_report(run_tests(bundle), verbose=True)
    assert "PASS: " in text
    assert "data.demo.authz_test.test_admin_allowed" in text


def test_summary_without_errors_has_no_error_count(tmp_path: Path) -> None:
    """The `, N errors` suffix appears only when there are errors."""
    only_pass = "package demo.authz_test\n\nimport rego.v1\n\ntest_one if { 1 == 1 }\n"
    report = run_tests(write_bundle(tmp_path / "b", only_pass))
    assert format_report(report, verbose=False).splitlines()[-1] == "1 passed, 0 failed"
    assert report.ok


def test_pattern_selects_tests_by_query(bundle: Path) -> None:
    """The pattern is a regex over `data.<package>.<test>`."""
    assert outcomes(bundle, r"authz_test\.test_admin") == {"test_admin_allowed": "pass"}


def test_directory_without_manifest_is_loaded(tmp_path: Path) -> None:
    """A plain directory of policies (no .manifest) is tested too."""
    assert (
        outcomes(write_bundle(tmp_path / "loose", manifest=False))["test_admin_allowed"] == "pass"
    )


def test_module_that_does_not_compile_is_a_load_error(bundle: Path) -> None:
    """A module regopy rejects makes the run an error, naming the file."""
    (bundle / "demo" / "broken.rego").write_text(
        "package demo.broken\n\nx := {a | some i, a in [1]}\n"
    )
    report = run_tests(bundle)
    assert report.errors >= 1
    assert not report.ok
    assert any("broken.rego" in problem for problem in report.load_errors)


def test_whole_input_replacement_is_refused_not_run(tmp_path: Path) -> None:
    """`with input as` crashes regopy, so such a file's tests are errors, never executed."""
    tests = "package demo.authz_test\n\nimport rego.v1\n\nimport data.demo.authz\n\n"
    tests += 'test_w if { authz.allow with input as {"user": "root"} }\n'
    report = run_tests(write_bundle(tmp_path / "w", tests))
    assert [(r.name, r.outcome) for r in report.results] == [("test_w", "error")]
    assert "with input as" in report.results[0].detail


def test_shipped_bundle_tests_are_discovered() -> None:
    """The shipped policies have a test file per layer and for the decision."""
    from maestro_gate.authoring.tester import discover
    from maestro_gate.engine.bundle import read_bundle

    root = Path(__file__).resolve().parents[1] / "policies"
    found = discover(read_bundle(root).tests)
    packages = {package for _, package, _ in found}
    assert "maestro.decision_test" in packages
    layers = {rel.split("/")[2] for rel, _, _ in found if rel.startswith("maestro/layers/")}
    assert len(layers) == 8
    assert len(found) > 100


@pytest.mark.parametrize("engine", ["embedded", "opa"])
def test_both_engines_give_the_same_outcomes_and_closing_line(bundle: Path, engine: str) -> None:
    """A pass, two failures (undefined, not true) and an error, counted alike on each engine."""
    report = run_tests(bundle, engine=engine)  # type: ignore[arg-type]
    assert {r.name: r.outcome for r in report.results} == {
        "test_admin_allowed": "pass",
        "test_guest_allowed": "fail",
        "test_divides_by_zero": "error",
        "test_not_boolean": "fail",
    }
    assert format_report(report).splitlines()[-1] == "1 passed, 2 failed, 1 errors"


def test_opa_reports_undefined_and_non_true_values_as_failures(bundle: Path) -> None:
    """On OPA an undefined test says so, and a non-boolean value is named."""
    details = {r.name: r.detail for r in run_tests(bundle, engine="opa").results}
    assert details["test_guest_allowed"] == "undefined"
    assert details["test_not_boolean"] == "evaluated to 'yes', not true"
    assert "divide by zero" in details["test_divides_by_zero"]


def test_opa_runs_whole_input_replacement_and_chained_with(tmp_path: Path) -> None:
    """`with input as` and chained `with` (input and data) work on OPA as in `opa test`."""
    tests = "package demo.authz_test\n\nimport rego.v1\n\nimport data.demo.authz\n\n"
    tests += 'test_whole if authz.allow with input as {"user": "root"}\n'
    tests += 'test_chained if authz.allow with input as {"user": "x"} with input.user as "root"\n'
    tests += 'test_data if authz.allow with input.user as "x" with data.demo.admin as "x"\n'
    tests += 'test_whole_denies if not authz.allow with input as {"user": "guest"}\n'
    report = run_tests(write_bundle(tmp_path / "w", tests), engine="opa")
    assert [(r.name, r.outcome) for r in report.results] == [
        ("test_whole", "pass"),
        ("test_chained", "pass"),
        ("test_data", "pass"),
        ("test_whole_denies", "pass"),
    ]
    assert report.ok


def test_opa_undefined_function_is_a_load_error_naming_file_and_line(bundle: Path) -> None:
    """A call OPA cannot resolve stops the whole run with the file:line of the call."""
    (bundle / "demo" / "broken.rego").write_text(
        "package demo.broken\n\nimport rego.v1\n\nx if no.such_function(1)\n"
    )
    report = run_tests(bundle, engine="opa")
    shown = (bundle / "demo" / "broken.rego").as_posix()
    assert report.results == []
    problem = f"{shown}:5: rego_type_error: undefined function no.such_function"
    assert report.load_errors == [problem]
    assert format_report(report).splitlines() == [
        f"ERROR: {problem}",
        "0 passed, 0 failed, 1 errors",
    ]


def test_opa_parse_error_is_a_load_error_naming_file_and_line(bundle: Path) -> None:
    """A module OPA cannot parse is a load error with its file and line, and no test runs."""
    (bundle / "demo" / "broken.rego").write_text("package demo.broken\n\nx if { 1 == }\n")
    report = run_tests(bundle, engine="opa")
    shown = (bundle / "demo" / "broken.rego").as_posix()
    assert report.results == []
    assert len(report.load_errors) == 1
    assert report.load_errors[0].startswith(f"{shown}:3: rego_parse_error: ")
    assert not report.ok


def test_cli_runs_the_tests_on_the_engine_asked_for(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy test --engine opa` prints the report and exits 1 when a test fails."""
    from maestro_gate.cli import main

    assert main(["policy", "test", "--engine", "opa", "-r", "test_admin", str(bundle)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"
    assert main(["policy", "test", "--engine", "opa", str(bundle)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 2 failed, 1 errors"
