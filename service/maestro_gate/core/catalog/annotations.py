"""The policy contract's METADATA annotations and `test_` rules, read from Rego source.

Every rule carries an OPA `# METADATA` block directly above it whose `custom` map names `rule`
(`L<n>.<snake>` or `CL.<snake>`), `layer`, `threats` and optionally `mitigations`. A `test_`
rule exercises a rule when its body mentions the rule id as a string. `coverage.py` reports on
what is read here; `authoring/check.py` refuses bundles whose annotations break the contract.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from maestro_gate.core.catalog.model import Catalog

RULE_ID = re.compile(r"^(L[1-7]|CL)\.[a-z][a-z0-9_]*$")
_RULE_ID_LITERAL = re.compile(r'"((?:L[1-7]|CL)\.[a-z][a-z0-9_]*)"')
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_TEST_HEAD = re.compile(r"^(test_[A-Za-z0-9_]*)\b")


class AnnotationError(ValueError):
    """The policy directory is unreadable or a METADATA block is malformed; see `problems`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid policy annotations:\n  " + "\n  ".join(problems))
        self.problems = problems


class Model(BaseModel):
    """Base for annotation and coverage models: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleAnnotation(Model):
    """One annotated rule: its METADATA `custom` fields, location and the rule ids it emits."""

    rule: str
    layer: str
    threats: tuple[str, ...]
    mitigations: tuple[str, ...] = ()
    title: str | None = None
    file: str
    line: int
    package: str | None = None
    mentions: tuple[str, ...] = ()


class RegoTest(Model):
    """A `test_` rule and the rule ids its body mentions."""

    id: str
    file: str
    line: int
    rules: tuple[str, ...]


def rule_annotations(policy_dir: Path) -> list[RuleAnnotation]:
    """Every rule annotation in non-test `.rego` files under `policy_dir`; raise AnnotationError."""
    return scan(policy_dir)[0]


def rego_tests(policy_dir: Path) -> list[RegoTest]:
    """Every `test_` rule under `policy_dir` and the rule ids it mentions; raise AnnotationError."""
    return scan(policy_dir)[1]


def annotation_problems(annotations: list[RuleAnnotation], catalog: Catalog) -> list[str]:
    """What is wrong with the annotations against the catalog: ids, layers, threats, mitigations."""
    problems: list[str] = []
    first: dict[str, RuleAnnotation] = {}
    for ann in annotations:
        where = f"{ann.file}:{ann.line} {ann.rule}"
        code = ann.rule.split(".", 1)[0]
        layer = catalog.layer(ann.layer)
        if not RULE_ID.match(ann.rule):
            problems.append(f"{where}: rule id does not match {RULE_ID.pattern}")
        if layer is None:
            problems.append(f"{where}: unknown layer {ann.layer!r}")
        elif RULE_ID.match(ann.rule) and layer.code != code:
            problems.append(
                f"{where}: prefix {code} disagrees with layer {ann.layer} ({layer.code})"
            )
        package_layer = _package_layer(ann.package)
        if package_layer and package_layer != ann.layer:
            problems.append(f"{where}: layer {ann.layer} but package {ann.package}")
        if not ann.threats:
            problems.append(f"{where}: cites no threats")
        problems += [f"{where}: unknown threat {t!r}" for t in ann.threats if not catalog.threat(t)]
        problems += [
            f"{where}: unknown mitigation {m!r}"
            for m in ann.mitigations
            if not catalog.mitigation(m)
        ]
        if ann.mentions and ann.rule not in ann.mentions:
            problems.append(f"{where}: body emits {', '.join(ann.mentions)}, not its own id")
        earlier = first.setdefault(ann.rule, ann)
        if earlier is not ann and _cites(earlier) != _cites(ann):
            problems.append(f"{where}: annotation differs from {earlier.file}:{earlier.line}")
    return problems


def _cites(ann: RuleAnnotation) -> tuple[str, frozenset[str], frozenset[str]]:
    return ann.layer, frozenset(ann.threats), frozenset(ann.mitigations)


def _package_layer(package: str | None) -> str | None:
    parts = (package or "").split(".")
    return parts[2] if parts[:2] == ["maestro", "layers"] and len(parts) > 2 else None


def scan(policy_dir: Path) -> tuple[list[RuleAnnotation], list[RegoTest]]:
    if not policy_dir.is_dir():
        raise AnnotationError([f"{policy_dir}: not a directory"])
    annotations: list[RuleAnnotation] = []
    tests: list[RegoTest] = []
    problems: list[str] = []
    for path in sorted(policy_dir.rglob("*.rego")):
        rel = path.relative_to(policy_dir).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{rel}: cannot read: {exc}")
            continue
        _scan_module(rel, text, annotations, tests, problems)
    if problems:
        raise AnnotationError(problems)
    return annotations, tests


def _scan_module(
    rel: str,
    text: str,
    annotations: list[RuleAnnotation],
    tests: list[RegoTest],
    problems: list[str],
) -> None:
    lines = text.splitlines()
    top = _top_level(lines)
    package_match = _PACKAGE.search(text)
    package = package_match.group(1) if package_match else None
    is_test_file = rel.endswith("_test.rego")
    i = 0
    while i < len(lines):
        if top[i] and lines[i].rstrip() == "# METADATA":
            end = i + 1
            while end < len(lines) and lines[end].startswith("#"):
                end += 1
            if not is_test_file:
                block = "\n".join(_decomment(line) for line in lines[i + 1 : end])
                ann = _annotation(rel, i + 1, block, lines, end, top, package, problems)
                if ann is not None:
                    annotations.append(ann)
            i = end
            continue
        head = _TEST_HEAD.match(lines[i]) if top[i] else None
        if head:
            body = "\n".join(lines[i : _statement_end(lines, top, i)])
            test_id = f"data.{package}.{head.group(1)}" if package else f"{rel}:{head.group(1)}"
            found = tuple(dict.fromkeys(_RULE_ID_LITERAL.findall(body)))
            tests.append(RegoTest(id=test_id, file=rel, line=i + 1, rules=found))
        i += 1


def _annotation(
    rel: str,
    line: int,
    block: str,
    lines: list[str],
    head: int,
    top: list[bool],
    package: str | None,
    problems: list[str],
) -> RuleAnnotation | None:
    where = f"{rel}:{line}"
    try:
        meta: Any = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        problems.append(f"{where}: METADATA is not valid YAML: {exc}")
        return None
    custom = meta.get("custom") if isinstance(meta, dict) else None
    if not isinstance(custom, dict) or "rule" not in custom:
        return None
    rule, layer = custom.get("rule"), custom.get("layer")
    threats, mitigations = custom.get("threats", []), custom.get("mitigations", [])
    if not isinstance(rule, str) or not isinstance(layer, str):
        problems.append(f"{where}: custom.rule and custom.layer must both be strings")
        return None
    for key, value in (("threats", threats), ("mitigations", mitigations)):
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            problems.append(f"{where} {rule}: custom.{key} must be a list of strings")
            return None
    if head >= len(lines) or not lines[head].strip() or lines[head].startswith("package"):
        problems.append(f"{where} {rule}: METADATA block is not directly above a rule")
        return None
    body = "\n".join(lines[head : _statement_end(lines, top, head)])
    title = meta.get("title")
    return RuleAnnotation(
        rule=rule,
        layer=layer,
        threats=tuple(threats),
        mitigations=tuple(mitigations),
        title=title if isinstance(title, str) else None,
        file=rel,
        line=head + 1,
        package=package,
        mentions=tuple(dict.fromkeys(_RULE_ID_LITERAL.findall(body))),
    )


def _decomment(line: str) -> str:
    text = line[1:]
    return text[1:] if text.startswith(" ") else text


def _statement_end(lines: list[str], top: list[bool], start: int) -> int:
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if top[j] and line and line[0] not in " \t}])" and not line.startswith("else"):
            return j
    return len(lines)


def _top_level(lines: list[str]) -> list[bool]:
    """For each line, whether it starts outside every bracket and raw string."""
    depth, raw, result = 0, False, []
    for line in lines:
        _, depth, raw, top = scan_line(line, depth, raw)
        result.append(top)
    return result


def scan_line(line: str, depth: int, raw: bool) -> tuple[str, int, bool, bool]:
    """The line without its comment, the bracket depth and raw-string state after it, and
    whether it began outside every bracket and raw string."""
    top = depth == 0 and not raw
    in_string = False
    i = 0
    while i < len(line):
        char = line[i]
        if raw:
            raw = char != "`"
        elif in_string:
            if char == "\\":
                i += 1
            else:
                in_string = char != '"'
        elif char == "#":
            return line[:i], depth, raw, top
        elif char == '"':
            in_string = True
        elif char == "`":
            raw = True
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth = max(0, depth - 1)
        i += 1
    return line, depth, raw, top
