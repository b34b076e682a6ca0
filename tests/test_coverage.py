"""Catalog coverage of a Rego policy directory: METADATA annotations, tests, per-layer report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from maestro_gate.core.catalog.annotations import (
    AnnotationError,
    annotation_problems,
    rego_tests,
    rule_annotations,
)
from maestro_gate.core.catalog.coverage import (
    CoverageReport,
    coverage_report,
    main_coverage,
    render_text,
)
from maestro_gate.core.catalog.files import load_answers, load_catalog
from maestro_gate.core.catalog.model import Answers, Catalog, CatalogError

CATALOG_DIR = Path(__file__).resolve().parents[1] / "catalog"

L3_POLICY = """\
# METADATA
# title: Layer 3, agent frameworks
# scope: package
package maestro.layers.l3_agent_frameworks

import rego.v1

# METADATA
# title: Tool not on the agent's allowlist
# custom:
#   rule: L3.tool_not_allowlisted
#   layer: l3_agent_frameworks
#   threats: [T2, T3]
#   mitigations: [least_privilege_tool_scoping]
deny contains reason if {
\tnot input.action in {"search", "read"}
\treason := {
\t\t"rule": "L3.tool_not_allowlisted",
\t\t"layer": "l3_agent_frameworks",
\t\t"threats": ["T2", "T3"],
\t\t"message": sprintf("tool %q is not allowed {here}", [input.action]),
\t}
}

# METADATA
# title: Reflection loop too deep
# custom:
#   rule: L3.reflection_depth_exceeded
#   layer: l3_agent_frameworks
#   threats: [T6]
#   mitigations: [reflection_loop_depth_cap]
hitl contains reason if {
\tinput.context.reflection_depth > 5
\tnote := `a raw string with an unbalanced { brace`
\treason := {"rule": "L3.reflection_depth_exceeded", "layer": "l3_agent_frameworks",
\t\t"threats": ["T6"], "message": note}
}
"""

L3_TESTS = """\
package maestro.layers.l3_agent_frameworks_test

import rego.v1

import data.maestro.layers.l3_agent_frameworks as l3

# METADATA
# custom:
#   rule: L3.not_a_real_rule
#   layer: l3_agent_frameworks
#   threats: [T2]
test_unlisted_tool_is_denied if {
\tsome reason in l3.deny with input as {"action": "shell"}
\treason.rule == "L3.tool_not_allowlisted"
}

test_listed_tool_passes if {
\tcount(l3.deny) == 0 with input as {"action": "search"}
}

todo_test_reflection if {
\t"L3.reflection_depth_exceeded" in {"x"}
}
"""


def annotated_rule(rule: str, layer: str, threats: str, body_rule: str | None = None) -> str:
    """A minimal annotated deny rule whose body emits `body_rule` (default: its own id)."""
    return (
        f"# METADATA\n# custom:\n#   rule: {rule}\n#   layer: {layer}\n#   threats: {threats}\n"
        f'deny contains {{"rule": "{body_rule or rule}", "layer": "{layer}"}} if {{\n'
        "\tinput.x\n}\n"
    )


def write(root: Path, files: dict[str, str]) -> Path:
    """Write the given files under root and return root."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """The project's catalog."""
    return load_catalog(CATALOG_DIR)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A small bundle with two annotated L3 rules and a test file beside them."""
    return write(
        tmp_path / "policies",
        {"l3/tools.rego": L3_POLICY, "l3/tools_test.rego": L3_TESTS},
    )


def test_rule_annotations_read_the_metadata_block_above_each_rule(policies: Path) -> None:
    """Each rule-scoped METADATA block yields its custom fields, title, file, line and package."""
    first, second = rule_annotations(policies)
    assert (first.rule, first.layer, first.threats) == (
        "L3.tool_not_allowlisted",
        "l3_agent_frameworks",
        ("T2", "T3"),
    )
    assert first.mitigations == ("least_privilege_tool_scoping",)
    assert (first.title, first.file, first.line) == (
        "Tool not on the agent's allowlist",
        "l3/tools.rego",
        15,
    )
    assert first.package == "maestro.layers.l3_agent_frameworks"
    assert second.rule == "L3.reflection_depth_exceeded"


def test_rule_bodies_end_at_the_next_top_level_statement(policies: Path) -> None:
    """Braces inside strings and raw strings do not make one rule's body swallow the next."""
    first, second = rule_annotations(policies)
    assert first.mentions == ("L3.tool_not_allowlisted",)
    assert second.mentions == ("L3.reflection_depth_exceeded",)


def test_package_metadata_and_test_file_metadata_are_not_rule_annotations(
    policies: Path,
) -> None:
    """Only METADATA with custom.rule in non-test files counts as a rule annotation."""
    assert [a.rule for a in rule_annotations(policies)] == [
        "L3.tool_not_allowlisted",
        "L3.reflection_depth_exceeded",
    ]


def test_a_test_exercises_the_rules_whose_ids_its_body_mentions(policies: Path) -> None:
    """test_ rules record the quoted rule ids in their bodies; todo_test_ rules are skipped."""
    tests = {t.id: t.rules for t in rego_tests(policies)}
    prefix = "data.maestro.layers.l3_agent_frameworks_test."
    assert tests == {
        prefix + "test_unlisted_tool_is_denied": ("L3.tool_not_allowlisted",),
        prefix + "test_listed_tool_passes": (),
    }


def test_report_lists_rules_and_tests_for_each_threat_at_its_layer(
    policies: Path, catalog: Catalog
) -> None:
    """At L3, T2 is enforced by the allowlist rule and exercised by the test naming it."""
    report = coverage_report(policies, catalog)
    l3 = next(layer for layer in report.layers if layer.id == "l3_agent_frameworks")
    t2 = next(item for item in l3.threats if item.id == "T2")
    assert t2.rules == ("L3.tool_not_allowlisted",)
    assert t2.tests == (
        "data.maestro.layers.l3_agent_frameworks_test.test_unlisted_tool_is_denied",
    )
    assert t2.covered
    t6 = next(item for item in l3.threats if item.id == "T6")
    assert (t6.rules, t6.tests) == (("L3.reflection_depth_exceeded",), ())


def test_report_lists_uncovered_and_off_catalog_threats_per_layer(
    policies: Path, catalog: Catalog
) -> None:
    """Threats no rule at a layer cites are uncovered; cited ones placed elsewhere are flagged."""
    report = coverage_report(policies, catalog)
    l3 = next(layer for layer in report.layers if layer.id == "l3_agent_frameworks")
    assert "T11" in l3.uncovered_threats
    assert "T2" not in l3.uncovered_threats
    assert l3.off_catalog_threats == ("T3",)
    l4 = next(layer for layer in report.layers if layer.id == "l4_deployment_infrastructure")
    assert "T3" in l4.uncovered_threats
    assert "T3" not in report.uncovered_threats
    assert "T1" in report.uncovered_threats


def test_report_tracks_mitigations_rules_and_untested_rules(
    policies: Path, catalog: Catalog
) -> None:
    """Mitigations cited by a layer's rules are covered; a rule no test names is untested."""
    report = coverage_report(policies, catalog)
    l3 = next(layer for layer in report.layers if layer.id == "l3_agent_frameworks")
    covered = {item.id for item in l3.mitigations if item.covered}
    assert covered == {"least_privilege_tool_scoping", "reflection_loop_depth_cap"}
    assert report.untested_rules == ("L3.reflection_depth_exceeded",)
    assert (report.threats_covered, report.mitigations_covered) == (3, 2)
    assert report.problems == ()


def test_report_round_trips_through_json(policies: Path, catalog: Catalog) -> None:
    """The report serialises to JSON and parses back to an equal model."""
    report = coverage_report(policies, catalog)
    assert CoverageReport.model_validate_json(report.model_dump_json()) == report


def test_render_text_shows_a_summary_and_a_row_per_threat(policies: Path, catalog: Catalog) -> None:
    """The text table opens with totals and names each threat's rules and test count."""
    text = render_text(coverage_report(policies, catalog))
    assert text.startswith("MAESTRO coverage: 2 rules (1 tested), threats 3/49, mitigations 2/47")
    row = next(line for line in text.splitlines() if line.strip().startswith("T2 "))
    assert row.split() == ["T2", "Tool", "Misuse", "L3.tool_not_allowlisted", "1", "test"]
    assert "rules no test exercises:\n  L3.reflection_depth_exceeded" in text


def test_tests_naming_unknown_rules_are_reported(tmp_path: Path, catalog: Catalog) -> None:
    """A test mentioning a rule id no annotation defines appears in unknown_rule_mentions."""
    root = write(
        tmp_path,
        {
            "p.rego": "package p\n\n" + annotated_rule("L3.a", "l3_agent_frameworks", "[T2]"),
            "p_test.rego": 'package p_test\n\ntest_ghost if {\n\t"L3.ghost" == "L3.ghost"\n}\n',
        },
    )
    report = coverage_report(root, catalog)
    assert report.unknown_rule_mentions == ("data.p_test.test_ghost mentions L3.ghost",)


def test_repeated_definitions_of_one_rule_merge(tmp_path: Path, catalog: Catalog) -> None:
    """Two bodies annotated with the same id and citations count as one rule at two locations."""
    rule = annotated_rule("L3.a", "l3_agent_frameworks", "[T2]")
    root = write(tmp_path, {"p.rego": "package p\n\n" + rule + "\n" + rule})
    report = coverage_report(root, catalog)
    assert [(r.rule, r.locations) for r in report.rules] == [("L3.a", ("p.rego:8", "p.rego:17"))]
    assert report.problems == ()


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (annotated_rule("L3.ToolBad", "l3_agent_frameworks", "[T2]"), "rule id does not match"),
        (annotated_rule("L8.x", "l3_agent_frameworks", "[T2]"), "rule id does not match"),
        (annotated_rule("L3.x", "l3_agent_frameworks", "[T2, T99]"), "unknown threat 'T99'"),
        (
            annotated_rule("L3.x", "l3_agent_framework", "[T2]"),
            "unknown layer 'l3_agent_framework'",
        ),
        (annotated_rule("L4.x", "l3_agent_frameworks", "[T2]"), "prefix L4 disagrees with layer"),
        (annotated_rule("L3.x", "l3_agent_frameworks", "[]"), "cites no threats"),
        (
            annotated_rule("L3.x", "l3_agent_frameworks", "[T2]", body_rule="L3.y"),
            "body emits L3.y, not its own id",
        ),
        (
            annotated_rule("L3.x", "l3_agent_frameworks", "[T2]")
            + annotated_rule("L3.x", "l3_agent_frameworks", "[T6]"),
            "annotation differs from p.rego:",
        ),
        (
            annotated_rule("L3.x", "l3_agent_frameworks", "[T2]").replace(
                "#   threats", "#   mitigations: [no_such_control]\n#   threats"
            ),
            "unknown mitigation 'no_such_control'",
        ),
    ],
)
def test_invalid_annotations_are_reported_as_problems(
    tmp_path: Path, catalog: Catalog, rules: str, problem: str
) -> None:
    """Bad ids, unknown layers, threats or mitigations and inconsistent annotations are problems."""
    root = write(tmp_path, {"p.rego": "package p\n\n" + rules})
    problems = annotation_problems(rule_annotations(root), catalog)
    assert any(problem in p for p in problems), problems


def test_layer_disagreeing_with_the_layer_package_is_a_problem(
    tmp_path: Path, catalog: Catalog
) -> None:
    """A rule in package maestro.layers.l4_... annotated with another layer is a problem."""
    text = "package maestro.layers.l4_deployment_infrastructure\n\n"
    text += annotated_rule("L3.x", "l3_agent_frameworks", "[T2]")
    problems = annotation_problems(rule_annotations(write(tmp_path, {"p.rego": text})), catalog)
    assert problems == [
        "p.rego:8 L3.x: layer l3_agent_frameworks but package "
        "maestro.layers.l4_deployment_infrastructure"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# METADATA\n# custom: [unclosed\ndeny contains 1 if { true }\n", "not valid YAML"),
        (
            "# METADATA\n# custom:\n#   rule: L3.x\n#   layer: l3_agent_frameworks\n"
            "#   threats: T2\ndeny contains 1 if { true }\n",
            "custom.threats must be a list of strings",
        ),
        (
            "# METADATA\n# custom:\n#   rule: L3.x\n#   layer: l3_agent_frameworks\n"
            "#   threats: [T2]\n\ndeny contains 1 if { true }\n",
            "METADATA block is not directly above a rule",
        ),
    ],
)
def test_malformed_metadata_raises_annotation_error(
    tmp_path: Path, text: str, problem: str
) -> None:
    """Unparseable YAML, wrongly typed fields or a detached block raise AnnotationError."""
    root = write(tmp_path, {"p.rego": "package p\n\n" + text})
    with pytest.raises(AnnotationError, match=problem):
        rule_annotations(root)


def test_missing_policy_directory_raises_annotation_error(tmp_path: Path) -> None:
    """A policy path that is not a directory is refused."""
    with pytest.raises(AnnotationError, match="not a directory"):
        rule_annotations(tmp_path / "absent")


def test_main_coverage_prints_json_and_exits_zero(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a valid catalog and annotations the JSON report is printed and the exit code is 0."""
    assert main_coverage(policies, CATALOG_DIR, as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["threats_covered"] == 3
    assert [layer["code"] for layer in report["layers"]][-1] == "CL"


def test_main_coverage_exits_one_on_invalid_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule citing an unknown threat makes the command report the problem and exit 1."""
    root = write(
        tmp_path,
        {"p.rego": "package p\n\n" + annotated_rule("L3.x", "l3_agent_frameworks", "[T77]")},
    )
    assert main_coverage(root, CATALOG_DIR, as_json=False) == 1
    assert "problems:\n  p.rego:8 L3.x: unknown threat 'T77'" in capsys.readouterr().out
    assert main_coverage(root, CATALOG_DIR, as_json=True) == 1
    assert "problem: p.rego:8 L3.x: unknown threat 'T77'" in capsys.readouterr().err


def test_main_coverage_exits_one_on_a_broken_catalog(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog that fails its checks makes the command print why and exit 1."""
    broken = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, broken)
    doc = json.loads((broken / "crosswalk_owasp_asi.json").read_text(encoding="utf-8"))
    doc["risks"][0]["threats"] = ["T51"]
    (broken / "crosswalk_owasp_asi.json").write_text(json.dumps(doc), encoding="utf-8")
    assert main_coverage(policies, broken, as_json=False) == 1
    assert "ASI01: unknown threat 'T51'" in capsys.readouterr().err


REPO_ROOT = CATALOG_DIR.parent


def answers_doc(**entries: object) -> dict[str, object]:
    """An answers document with the given `credited` and `out_of_reach` lists."""
    return {"credited": [], "out_of_reach": [], **entries}


CREDIT = {
    "mechanism": "Tamper-evident audit log",
    "threats": ["T23"],
    "mitigations": ["sigstore_signing"],
    "tests": ["tests/test_audit_tamper.py::test_deleted_middle_record_is_a_gap"],
}
BEYOND = {"threats": ["T20"], "reason": "inside the framework", "control": "patching"}


def test_every_item_is_in_exactly_one_of_the_states(policies: Path, catalog: Catalog) -> None:
    """Rules enforce, answers credit or put out of reach, the rest is open; a tally per state."""
    answers = Answers.from_document(answers_doc(credited=[CREDIT], out_of_reach=[BEYOND]))
    report = coverage_report(policies, catalog, answers, tests_root=REPO_ROOT)
    states = {item.id: item for item in report.threat_states}
    assert len(states) == 49
    assert states["T2"].state == "enforced"
    assert states["T2"].rules == ("L3.tool_not_allowlisted",)
    assert states["T23"].state == "credited"
    assert states["T23"].mechanism == "Tamper-evident audit log"
    assert list(states["T23"].tests) == CREDIT["tests"]
    assert (states["T20"].state, states["T20"].control) == ("out_of_reach", "patching")
    assert states["T48"].state == "open"
    assert report.threats_by_state == {
        "enforced": 3,
        "credited": 1,
        "out_of_reach": 1,
        "open": 44,
    }
    sigstore = next(i for i in report.mitigation_states if i.id == "sigstore_signing")
    assert sigstore.state == "credited"
    assert report.problems == ()
    text = render_text(report)
    assert "threats: 3 enforced, 1 credited, 1 out of reach, 44 open" in text
    assert "  T23: Tamper-evident audit log" in text
    assert "  T20: inside the framework\n      control: patching" in text
    assert "(credited)" in text


def test_a_credited_test_that_does_not_exist_is_a_problem(policies: Path, catalog: Catalog) -> None:
    """A credit must name tests that exist: a missing file or function is reported."""
    credit = {
        **CREDIT,
        "tests": [
            "tests/test_audit_tamper.py::test_no_such_test",
            "tests/test_absent.py::test_x",
        ],
    }
    answers = Answers.from_document(answers_doc(credited=[credit]))
    report = coverage_report(policies, catalog, answers, tests_root=REPO_ROOT)
    assert report.problems == (
        "answers.json: credited test tests/test_audit_tamper.py::test_no_such_test not found",
        "answers.json: credited test file tests/test_absent.py not found",
    )


def test_an_item_answered_twice_or_also_enforced_is_a_problem(
    policies: Path, catalog: Catalog
) -> None:
    """One state per item: answering an enforced item, or one item twice, is reported."""
    twice = {**BEYOND, "threats": ["T23", "T2"]}
    answers = Answers.from_document(answers_doc(credited=[CREDIT], out_of_reach=[twice]))
    problems = coverage_report(policies, catalog, answers).problems
    assert "answers.json: T23 is answered 2 times" in problems
    assert "answers.json: T2 is enforced by L3.tool_not_allowlisted and also answered" in problems


def test_the_shipped_answers_are_valid_and_every_threat_has_a_state() -> None:
    """catalog/answers.json passes its schema, names real tests and overlaps no enforced item."""
    catalog = load_catalog(CATALOG_DIR)
    answers = load_answers(CATALOG_DIR)
    report = coverage_report(REPO_ROOT / "policies", catalog, answers, tests_root=REPO_ROOT)
    assert report.problems == ()
    t23 = next(item for item in report.threat_states if item.id == "T23")
    assert t23.state == "credited"
    assert sum(report.threats_by_state.values()) == 49
    assert sum(report.mitigations_by_state.values()) == 47
    for item in report.threat_states + report.mitigation_states:
        if item.state == "out_of_reach":
            assert item.reason
            assert item.control
        if item.state == "credited":
            assert item.mechanism
            assert item.tests


def test_an_answers_file_breaking_its_schema_is_refused(tmp_path: Path) -> None:
    """An out-of-reach entry without the control that would see it fails the schema check."""
    shutil.copytree(CATALOG_DIR, tmp_path / "catalog")
    bad = answers_doc(out_of_reach=[{"threats": ["T20"], "reason": "x"}])
    (tmp_path / "catalog" / "answers.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(CatalogError, match="'control' is a required property"):
        load_answers(tmp_path / "catalog")
