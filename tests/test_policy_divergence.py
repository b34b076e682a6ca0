"""`policy check` reports Rego whose meaning differs between rego-cpp and OPA, on real engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import regopy
from opa_bindings import OpaEngine, OpaUndefinedError

from maestro_gate.authoring.check import check_directory
from maestro_gate.authoring.divergence import divergences
from maestro_gate.cli import main
from tests.conftest import write_bundle

HEAD = """package maestro.demo

import rego.v1

f(x) if x == 1

g(x) := 1 if x == 2

helper if false

maybe := 1 if false

constant := 3

flags := {"a": true}

default guarded := 0

guarded := input.nope

"""

# (body, whether rego-cpp and OPA answer differently when the `input` is empty)
NEGATIONS = [
    ("not input.nope >= 1", True),
    ('not "a" in input.nope', True),
    ("not input.nope != 1", True),
    ("not count(input.nope) > 0", True),
    ("not f(input.nope)", True),
    ('not startswith(input.nope, "a")', True),
    ('not sprintf("%v", [input.nope]) == "x"', True),
    ("not [input.nope] == [1]", True),
    ("not g(input.nope) == 1", True),
    ("not maybe >= 1", True),
    ("x := input; not x.nope >= 1", True),
    ("not flags[input.nope]", True),
    ("not input.nope == 1", False),
    ("not input.nope", False),
    ("not helper", False),
    ("x := 1; not f(x)", False),
    ('not object.get(input, "nope", 0) >= 1', False),
    ("not constant >= 1", False),
    ("not guarded >= 1", False),
    ("input.nope == 1; not input.nope >= 3", False),
    ("not count([y | y := input.nope]) > 0", False),
]


def _module(bodies: list[str]) -> str:
    return HEAD + "".join(f"p{i} if {{\n\t{body}\n}}\n\n" for i, body in enumerate(bodies))


def _line_of(source: str, rule: str) -> int:
    return source.splitlines().index(f"{rule} if {{") + 2


def test_negations_are_reported_exactly_where_the_engines_disagree() -> None:
    """Each planted negation is reported iff rego-cpp and OPA answer it differently."""
    source = _module([body for body, _ in NEGATIONS])
    opa = OpaEngine()
    opa.add_policy("demo.rego", source)
    rego = regopy.Interpreter()
    rego.add_module("demo.rego", source)
    rego.set_input_term(json.dumps({}))
    reported = {d.line for d in divergences({"demo.rego": source})}
    for i, (body, differs) in enumerate(NEGATIONS):
        try:
            on_opa = opa.eval_document(f"maestro.demo.p{i}", {}) is True
        except OpaUndefinedError:
            on_opa = False
        on_cpp = "true" in str(rego.query(f"data.maestro.demo.p{i}"))
        assert (on_opa != on_cpp) is differs, body
        assert (_line_of(source, f"p{i}") in reported) is differs, body
    opa.close()


def test_report_names_the_line_the_undefined_operand_and_the_rewrite() -> None:
    """A divergent negation is reported at its own line with the safe rewrite."""
    source = _module(["some x in input.xs", "x.id == 1\n\tnot x.trust >= 2"])
    (found,) = divergences({"demo.rego": source})
    assert found.file == "demo.rego"
    assert found.line == _line_of(source, "p1") + 1
    assert "`not x.trust >= 2`: when `x.trust` is undefined" in found.message
    assert "bind it first (`v := x.trust`)" in found.message
    assert "object.get" in found.message


@pytest.mark.parametrize(
    ("call", "reported"),
    [
        ("object.subset(input.a, input.b)", True),
        ("object.subset([], [])", True),
        ("object.subset([1], {1})", True),
        ('object.subset(object.get(input, "a", []), {1})', True),
        ("object.subset({x | some x in input.a}, {x | some x in input.b})", False),
        ('object.subset({"a": 1}, {"a": 1})', False),
    ],
)
def test_object_subset_is_reported_unless_both_sides_are_sets_or_objects(
    call: str, reported: bool
) -> None:
    """object.subset on values that may be arrays (SIGSEGV on two empty ones) is reported."""
    source = HEAD + f"q := {call}\n"
    found = [d for d in divergences({"demo.rego": source}) if "object.subset" in d.message]
    assert bool(found) is reported
    if reported:
        assert found[0].line == len(HEAD.splitlines()) + 1
        assert "convert both to sets first" in found[0].message


@pytest.mark.parametrize(
    ("expression", "reported"),
    [
        ('sprintf("%v", [sort(object.keys(input.a))])', True),
        ('sprintf("%v", [sort({"b", "a"})])', True),
        ("sort(s)", True),
        ('sprintf("%v", [sort([x | some x in object.keys(input.a)])])', False),
        ("sort(input.list)", False),
        ("sort(data.maestro.registry.order)", False),
    ],
)
def test_sort_of_a_possible_set_is_reported(expression: str, reported: bool) -> None:
    """sort over a set (a set on rego-cpp, an array on OPA) is reported; arrays are not."""
    source = HEAD + 's := {"x"}\n\n' + f"msg := {expression}\n"
    found = [d for d in divergences({"demo.rego": source}) if "`sort(" in d.message]
    assert bool(found) is reported
    if reported:
        assert "sort([x | some x in" in found[0].message


def test_sort_of_a_set_prints_differently_on_the_two_engines() -> None:
    """The construct the sort report guards against: `%v` of a sorted set."""
    source = 'package demo\n\nimport rego.v1\n\nmsg := sprintf("%v", [sort({"b", "a"})])\n'
    opa = OpaEngine()
    opa.add_policy("demo.rego", source)
    rego = regopy.Interpreter()
    rego.add_module("demo.rego", source)
    assert opa.eval_document("demo.msg") == '["a", "b"]'
    assert '{\\"a\\", \\"b\\"}' in str(rego.query("data.demo.msg"))
    opa.close()


def test_planted_divergence_fails_policy_check_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check` exits 1 and prints file:line and engine_divergence for a planted case."""
    rel = "maestro/demo/demo.rego"
    source = HEAD + "p if {\n\tnot input.trust >= 1\n}\n"
    bundle = write_bundle(tmp_path / "bundle", {rel: source})
    line = len(HEAD.splitlines()) + 2
    problems = [str(p) for p in check_directory(bundle, None)]
    assert len(problems) == 1
    assert problems[0].startswith(f"{rel}:{line}: `not input.trust >= 1`")
    assert problems[0].endswith("[engine_divergence]")
    assert main(["policy", "check", str(bundle)]) == 1
    assert "[engine_divergence]" in capsys.readouterr().out


def test_safe_idioms_pass_policy_check(tmp_path: Path) -> None:
    """Bound-then-negated values, object.get defaults, `==`, set subsets and array sorts pass."""
    body = """p if {
	trust := object.get(input, "trust", 0)
	not trust >= 1
	not input.kind == "x"
	not helper
	object.subset({x | some x in input.a}, {x | some x in input.b})
	msg := sprintf("%v", [sort([k | some k in object.keys(input.tools)])])
	msg != ""
}
"""
    bundle = write_bundle(tmp_path / "bundle", {"maestro/demo/demo.rego": HEAD + body})
    assert check_directory(bundle, None) == []
