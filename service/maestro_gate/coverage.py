"""Which MAESTRO threats and mitigations the Rego bundle enforces, and which tests exercise them.

The rules, their METADATA annotations and the `test_` rules are read by `annotations.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from maestro_gate.annotations import (
    AnnotationError,
    Model,
    RegoTest,
    RuleAnnotation,
    annotation_problems,
    scan,
)
from maestro_gate.catalog_files import load_catalog
from maestro_gate.core.catalog import Catalog, CatalogError, Layer


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


def coverage_report(policy_dir: Path, catalog: Catalog) -> CoverageReport:
    """Per layer, each catalog threat and mitigation with rules and tests; raise AnnotationError."""
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
    return CoverageReport(
        layers=layers,
        rules=tuple(rules),
        uncovered_threats=tuple(t.id for t in catalog.threats if t.id not in cited),
        untested_rules=tuple(rule.rule for rule in rules if not rule.tests),
        unknown_rule_mentions=tuple(mentions),
        problems=tuple(annotation_problems(annotations, catalog)),
        threats_total=len(catalog.threats),
        threats_covered=sum(1 for t in catalog.threats if t.id in cited),
        mitigations_total=len(catalog.mitigations),
        mitigations_covered=sum(1 for m in catalog.mitigations if m.id in covered_mitigations),
    )


def render_text(report: CoverageReport) -> str:
    """A human-readable table: a summary line, then per layer each threat and mitigation."""
    tested = len(report.rules) - len(report.untested_rules)
    out = [
        f"MAESTRO coverage: {len(report.rules)} rules ({tested} tested), "
        f"threats {report.threats_covered}/{report.threats_total}, "
        f"mitigations {report.mitigations_covered}/{report.mitigations_total}"
    ]
    for layer in report.layers:
        n_threats = sum(item.covered for item in layer.threats)
        n_mits = sum(item.covered for item in layer.mitigations)
        out += [
            "",
            f"{layer.code} {layer.name}: threats {n_threats}/{len(layer.threats)}, "
            f"mitigations {n_mits}/{len(layer.mitigations)}",
        ]
        out += [_row(f"{item.id:<4} {item.name}", item) for item in layer.threats]
        out += [_row(item.id, item) for item in layer.mitigations]
        if layer.uncovered_threats:
            out.append(f"  uncovered: {' '.join(layer.uncovered_threats)}")
        if layer.off_catalog_threats:
            out.append(f"  cited here, placed elsewhere: {' '.join(layer.off_catalog_threats)}")
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
        report = coverage_report(policy_dir, load_catalog(catalog_dir))
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


def _row(label: str, item: ItemCoverage) -> str:
    rules = ", ".join(item.rules) if item.rules else "-"
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
