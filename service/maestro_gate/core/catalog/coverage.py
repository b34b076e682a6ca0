"""Which MAESTRO threats and mitigations the Rego bundle enforces, and which tests exercise them.

The rules, their METADATA annotations and the `test_` rules are read by `annotations.py`.
Every threat and mitigation is in exactly one state: `enforced` (a rule cites it), `credited`
(a gate mechanism answers it, with the pytest tests that prove it: `catalog/answers.json`),
`out_of_reach` (why a decision point cannot see it, and the control that would) or `open`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

from maestro_gate.core.catalog.annotations import (
    AnnotationError,
    Model,
    RegoTest,
    RuleAnnotation,
    annotation_problems,
    scan,
)
from maestro_gate.core.catalog.files import load_answers, load_catalog
from maestro_gate.core.catalog.model import Answers, Catalog, CatalogError, Layer

State = Literal["enforced", "credited", "out_of_reach", "open"]
STATES: tuple[State, ...] = ("enforced", "credited", "out_of_reach", "open")


class ItemCoverage(Model):
    """A threat or mitigation at one layer: the rules there citing it and those rules' tests."""

    id: str
    name: str
    rules: tuple[str, ...]
    tests: tuple[str, ...]
    covered: bool


class LayerCoverage(Model):
    """Coverage of one catalog layer; `off_catalog_threats` are cited here but placed elsewhere."""

    id: str
    code: str
    name: str
    threats: tuple[ItemCoverage, ...]
    mitigations: tuple[ItemCoverage, ...]
    uncovered_threats: tuple[str, ...]
    off_catalog_threats: tuple[str, ...]


class RuleCoverage(Model):
    """A rule id (merged over its definitions), what it cites and the tests that exercise it."""

    rule: str
    layer: str
    title: str | None
    threats: tuple[str, ...]
    mitigations: tuple[str, ...]
    locations: tuple[str, ...]
    tests: tuple[str, ...]


class ItemState(Model):
    """A threat or mitigation's one state over the whole bundle, and what puts it there."""

    id: str
    name: str
    state: State
    rules: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    mechanism: str | None = None
    reason: str | None = None
    control: str | None = None


class CoverageReport(Model):
    """Catalog coverage of a policy directory; non-empty `problems` means invalid annotations."""

    layers: tuple[LayerCoverage, ...]
    rules: tuple[RuleCoverage, ...]
    uncovered_threats: tuple[str, ...]
    untested_rules: tuple[str, ...]
    unknown_rule_mentions: tuple[str, ...]
    problems: tuple[str, ...]
    threats_total: int
    threats_covered: int
    mitigations_total: int
    mitigations_covered: int
    threat_states: tuple[ItemState, ...] = ()
    mitigation_states: tuple[ItemState, ...] = ()
    threats_by_state: dict[str, int] = {}
    mitigations_by_state: dict[str, int] = {}


def coverage_report(
    policy_dir: Path,
    catalog: Catalog,
    answers: Answers | None = None,
    tests_root: Path | None = None,
) -> CoverageReport:
    """Per layer, each catalog threat and mitigation with rules and tests; raise AnnotationError.

    `answers` credits mechanisms and names what is out of reach; `tests_root` (the directory
    holding `tests/`) is where the credited tests must exist, when given.
    """
    answers = answers or Answers()
    annotations, tests = scan(policy_dir)
    rules = _merge_rules(annotations, tests)
    layers = tuple(_layer_coverage(catalog, layer, rules) for layer in catalog.layers)
    cited = {t for rule in rules for t in rule.threats}
    known_rules = {rule.rule for rule in rules}
    mentions = sorted(
        f"{test.id} mentions {rule}"
        for test in tests
        for rule in test.rules
        if rule not in known_rules
    )
    covered_mitigations = {m for rule in rules for m in rule.mitigations}
    threat_states = tuple(
        _state(t.id, t.name, [r for r in rules if t.id in r.threats], answers, "threats")
        for t in catalog.threats
    )
    mitigation_states = tuple(
        _state(m.id, m.name, [r for r in rules if m.id in r.mitigations], answers, "mitigations")
        for m in catalog.mitigations
    )
    problems = [
        *annotation_problems(annotations, catalog),
        *answers.problems(catalog),
        *_answer_overlaps(threat_states, mitigation_states, answers),
        *(_missing_tests(answers, tests_root) if tests_root else []),
    ]
    return CoverageReport(
        layers=layers,
        rules=tuple(rules),
        uncovered_threats=tuple(t.id for t in catalog.threats if t.id not in cited),
        untested_rules=tuple(rule.rule for rule in rules if not rule.tests),
        unknown_rule_mentions=tuple(mentions),
        problems=tuple(problems),
        threats_total=len(catalog.threats),
        threats_covered=sum(1 for t in catalog.threats if t.id in cited),
        mitigations_total=len(catalog.mitigations),
        mitigations_covered=sum(1 for m in catalog.mitigations if m.id in covered_mitigations),
        threat_states=threat_states,
        mitigation_states=mitigation_states,
        threats_by_state=_tally(threat_states),
        mitigations_by_state=_tally(mitigation_states),
    )


def _state(
    item_id: str, name: str, cited_by: list[RuleCoverage], answers: Answers, kind: str
) -> ItemState:
    """Enforced when a rule cites the item; else credited or out of reach as answered; else open."""
    if cited_by:
        tests = tuple(sorted({test for rule in cited_by for test in rule.tests}))
        rules = tuple(rule.rule for rule in cited_by)
        return ItemState(id=item_id, name=name, state="enforced", rules=rules, tests=tests)
    for credit in answers.credited:
        if item_id in getattr(credit, kind):
            return ItemState(
                id=item_id,
                name=name,
                state="credited",
                mechanism=credit.mechanism,
                tests=credit.tests,
            )
    for out in answers.out_of_reach:
        if item_id in getattr(out, kind):
            return ItemState(
                id=item_id, name=name, state="out_of_reach", reason=out.reason, control=out.control
            )
    return ItemState(id=item_id, name=name, state="open")


def _tally(states: tuple[ItemState, ...]) -> dict[str, int]:
    return {state: sum(1 for item in states if item.state == state) for state in STATES}


def _answer_overlaps(
    threats: tuple[ItemState, ...], mitigations: tuple[ItemState, ...], answers: Answers
) -> list[str]:
    """An item a rule enforces must not also be answered: it would be in two states."""
    answered = {i for entry in answers.entries for i in (*entry.threats, *entry.mitigations)}
    return [
        f"answers.json: {item.id} is enforced by {', '.join(item.rules)} and also answered"
        for item in (*threats, *mitigations)
        if item.state == "enforced" and item.id in answered
    ]


def _missing_tests(answers: Answers, root: Path) -> list[str]:
    """Credited tests that do not exist: the file, or a `def test_name(` in it."""
    problems = []
    for credit in answers.credited:
        for node in credit.tests:
            file, _, name = node.partition("::")
            path = root / file
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                problems.append(f"answers.json: credited test file {file} not found")
                continue
            if not re.search(rf"^(async )?def {re.escape(name)}\(", text, re.MULTILINE):
                problems.append(f"answers.json: credited test {node} not found")
    return problems


def render_text(report: CoverageReport) -> str:
    """A human-readable table: a summary line, then per layer each threat and mitigation."""
    tested = len(report.rules) - len(report.untested_rules)
    out = [
        f"MAESTRO coverage: {len(report.rules)} rules ({tested} tested), "
        f"threats {report.threats_covered}/{report.threats_total}, "
        f"mitigations {report.mitigations_covered}/{report.mitigations_total}"
    ]
    if report.threat_states:
        out.append("threats: " + _states_line(report.threats_by_state))
        out.append("mitigations: " + _states_line(report.mitigations_by_state))
    states = {i.id: i.state for i in (*report.threat_states, *report.mitigation_states)}
    for layer in report.layers:
        n_threats = sum(item.covered for item in layer.threats)
        n_mits = sum(item.covered for item in layer.mitigations)
        out += [
            "",
            f"{layer.code} {layer.name}: threats {n_threats}/{len(layer.threats)}, "
            f"mitigations {n_mits}/{len(layer.mitigations)}",
        ]
        out += [_row(f"{item.id:<4} {item.name}", item, states) for item in layer.threats]
        out += [_row(item.id, item, states) for item in layer.mitigations]
        if layer.uncovered_threats:
            out.append(f"  uncovered: {' '.join(layer.uncovered_threats)}")
        if layer.off_catalog_threats:
            out.append(f"  cited here, placed elsewhere: {' '.join(layer.off_catalog_threats)}")
    out += _answered_sections(report)
    for title, lines in (
        (
            "threats no rule covers",
            [" ".join(report.uncovered_threats)] if report.uncovered_threats else [],
        ),
        ("rules no test exercises", list(report.untested_rules)),
        ("tests naming unknown rules", list(report.unknown_rule_mentions)),
        ("problems", list(report.problems)),
    ):
        if lines:
            out += ["", f"{title}:", *(f"  {line}" for line in lines)]
    return "\n".join(out) + "\n"


def main_coverage(policy_dir: Path, catalog_dir: Path, as_json: bool) -> int:
    """Print the coverage report (text or JSON); return 0, or 1 for a bad catalog or annotations."""
    try:
        report = coverage_report(
            policy_dir,
            load_catalog(catalog_dir),
            load_answers(catalog_dir),
            tests_root=catalog_dir.parent,
        )
    except (CatalogError, AnnotationError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if as_json:
        print(report.model_dump_json(indent=2))
        for problem in report.problems:
            print(f"problem: {problem}", file=sys.stderr)
    else:
        print(render_text(report), end="")
    return 1 if report.problems else 0


def _states_line(tally: dict[str, int]) -> str:
    return ", ".join(f"{tally.get(state, 0)} {state.replace('_', ' ')}" for state in STATES)


def _answered_sections(report: CoverageReport) -> list[str]:
    """The credited, out-of-reach and open items, each with its mechanism or reason."""
    out: list[str] = []
    items = (*report.threat_states, *report.mitigation_states)
    credited = [i for i in items if i.state == "credited"]
    if credited:
        out += ["", "credited to a gate mechanism:"]
        for item in credited:
            out.append(f"  {item.id}: {item.mechanism}")
            out += [f"      {test}" for test in item.tests]
    beyond = [i for i in items if i.state == "out_of_reach"]
    if beyond:
        out += ["", "out of the gate's reach:"]
        for item in beyond:
            out += [f"  {item.id}: {item.reason}", f"      control: {item.control}"]
    still_open = [i.id for i in items if i.state == "open"]
    if still_open:
        out += [
            "",
            "open (neither enforced, credited nor out of reach):",
            f"  {' '.join(still_open)}",
        ]
    return out


def _row(label: str, item: ItemCoverage, states: dict[str, State]) -> str:
    state = states.get(item.id, "open")
    unruled = f"({state.replace('_', ' ')})" if state in ("credited", "out_of_reach") else "-"
    rules = ", ".join(item.rules) if item.rules else unruled
    tests = f"{len(item.tests)} test{'s' if len(item.tests) != 1 else ''}" if item.rules else ""
    return f"  {label:<52.52} {rules:<40} {tests}".rstrip()


def _threat_key(threat_id: str) -> tuple[int, str]:
    return (int(threat_id[1:]), "") if threat_id[1:].isdigit() else (10**6, threat_id)


def _merge_rules(annotations: list[RuleAnnotation], tests: list[RegoTest]) -> list[RuleCoverage]:
    groups: dict[str, list[RuleAnnotation]] = {}
    for ann in annotations:
        groups.setdefault(ann.rule, []).append(ann)
    merged = []
    for rule, anns in groups.items():
        threats = {t for ann in anns for t in ann.threats}
        merged.append(
            RuleCoverage(
                rule=rule,
                layer=anns[0].layer,
                title=next((ann.title for ann in anns if ann.title), None),
                threats=tuple(sorted(threats, key=_threat_key)),
                mitigations=tuple(sorted({m for ann in anns for m in ann.mitigations})),
                locations=tuple(f"{ann.file}:{ann.line}" for ann in anns),
                tests=tuple(sorted({test.id for test in tests if rule in test.rules})),
            )
        )
    return sorted(merged, key=lambda r: r.rule)


def _layer_coverage(catalog: Catalog, layer: Layer, rules: list[RuleCoverage]) -> LayerCoverage:
    layer_id = layer.id
    here = [rule for rule in rules if rule.layer == layer_id]

    def item(item_id: str, name: str, cited_by: list[RuleCoverage]) -> ItemCoverage:
        tests = sorted({test for rule in cited_by for test in rule.tests})
        names = tuple(rule.rule for rule in cited_by)
        return ItemCoverage(
            id=item_id, name=name, rules=names, tests=tuple(tests), covered=bool(names)
        )

    threats = tuple(
        item(t.id, t.name, [r for r in here if t.id in r.threats])
        for t in catalog.threats_at(layer_id)
    )
    mitigations = tuple(
        item(m.id, m.name, [r for r in here if m.id in r.mitigations])
        for m in catalog.mitigations_at(layer_id)
    )
    placed = {t.id for t in catalog.threats_at(layer_id)}
    off = {t for r in here for t in r.threats if t not in placed and catalog.threat(t)}
    return LayerCoverage(
        id=layer.id,
        code=layer.code,
        name=layer.name,
        threats=threats,
        mitigations=mitigations,
        uncovered_threats=tuple(i.id for i in threats if not i.covered),
        off_catalog_threats=tuple(sorted(off, key=_threat_key)),
    )
