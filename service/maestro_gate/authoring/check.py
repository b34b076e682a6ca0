"""`maestro-gate policy check`: refuse a bundle the target engine cannot run, that means
different things on rego-cpp and OPA, or that breaks the reason contract, before anyone loads it.

Four families of problem, each with the file and, when known, the line:

- `parse_error` / `compile_error`: a module or `*_test.rego` that the target engine (regopy for
  `embedded`, OPA's own for `opa` and `opa-inprocess`: `authoring.engines`) does not accept.
- `unsupported_builtin`: a call to a built-in the target engine lacks (on the embedded engine it
  would answer *undefined* and silently disable a deny).
- `engine_divergence` (`policy check` only, on every engine): a construct rego-cpp and OPA
  evaluate differently, with its safe rewrite (`authoring.divergence`).
- `contract`: a `# METADATA` `custom.rule` id that is not `L<n>.<snake>`/`CL.<snake>`, a cited
  threat or mitigation missing from the catalog, a layer field that disagrees with the package,
  or a rule id emitted by a layer's `deny`/`hitl`/`obligations` (or in any `"rule": ...` literal
  of a layer package) that has no annotation with that id and that layer.

The service runs the same `check_bundle` (embedded) before it activates a bundle (start and
reload).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import regopy

from maestro_gate.authoring.engines import CheckEngine, divergence_problems, opa_problems
from maestro_gate.core.catalog.annotations import (
    AnnotationError,
    annotation_problems,
    rule_annotations,
    scan_line,
)
from maestro_gate.core.catalog.files import load_catalog
from maestro_gate.core.catalog.model import Catalog, CatalogError
from maestro_gate.core.errors import BundleError
from maestro_gate.engine.bundle import Bundle, read_bundle, unsupported_builtins
from maestro_gate.engine.embedded import compile_bundle

RULE_ID = re.compile(r"^(L[1-7]|CL)\.[a-z][a-z0-9_]*$")
LAYER_PACKAGE = re.compile(r"^package\s+maestro\.layers\.([A-Za-z0-9_]+)\s*$", re.MULTILINE)
VERDICT_SETS = ("deny", "hitl", "obligations")
_RULE_FIELD = re.compile(r'"rule"\s*:\s*"((?:\\.|[^"\\])*)"')
_RULE_LIKE = re.compile(r'"((?:L\d+|CL)\.[A-Za-z0-9_]+)"')
_LOCATED = re.compile(r"^(?P<file>[^\s:]+\.rego):(?P<line>\d+)[:\s]*(?P<rest>.*)$", re.DOTALL)
_REGO_ERROR = re.compile(
    r"\(error \d+:(?P<file>[^|\s]+)\|(?P<offset>\d+)\|\d+\s*\(errormsg (?P<n>\d+):"
)


@dataclass(frozen=True)
class Problem:
    """One reason a bundle is refused: where (file, line when known) and what."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "bundle")
        return f"{where}: {self.message} [{self.code}]"

    def as_error(self) -> dict[str, object]:
        """The `{code, message, location}` entry of an error body."""
        location: dict[str, object] = {}
        if self.file:
            location["file"] = self.file
        if self.line:
            location["row"] = self.line
        return {"code": self.code, "message": self.message, "location": location}


def check_bundle(
    bundle: Bundle, catalog: Catalog | None, engine: CheckEngine = "embedded"
) -> list[Problem]:
    """Every parse, compile, built-in and contract problem of a bundle on `engine` (empty: it
    may load there).

    Without a catalog the threat and mitigation ids are not checked; everything else is.
    """
    if engine != "embedded":
        return opa_problems(bundle) + contract_problems(bundle, catalog)
    problems = _parse_problems(bundle)
    if not problems:
        try:
            compile_bundle(bundle)
        except BundleError as exc:
            if not exc.errors:
                problems.append(Problem("compile_error", exc.message))
    is_builtin = regopy.Interpreter().is_builtin
    problems += [
        Problem("unsupported_builtin", f"calls {name}, which the embedded engine lacks", file)
        for file, name in unsupported_builtins({**bundle.modules, **bundle.tests}, is_builtin)
    ]
    return problems + contract_problems(bundle, catalog)


def contract_problems(bundle: Bundle, catalog: Catalog | None) -> list[Problem]:
    """The reason-contract problems: annotations against the catalog, and emitted rule ids."""
    with tempfile.TemporaryDirectory(prefix="maestro-check-") as tmp:
        for rel, source in bundle.modules.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
        try:
            annotations = rule_annotations(Path(tmp))
        except AnnotationError as exc:
            return [_located(text) for text in exc.problems]
    problems: list[Problem] = []
    if catalog is not None:
        problems += [_located(text) for text in annotation_problems(annotations, catalog)]
    else:
        for ann in annotations:
            if not RULE_ID.match(ann.rule):
                message = f"{ann.rule}: rule id does not match {RULE_ID.pattern}"
                problems.append(Problem("contract", message, ann.file, ann.line))
            in_layer = (ann.package or "").startswith("maestro.layers.")
            if in_layer and ann.package != f"maestro.layers.{ann.layer}":
                message = f"{ann.rule}: layer {ann.layer} but package {ann.package}"
                problems.append(Problem("contract", message, ann.file, ann.line))
    layers_of: dict[str, set[str]] = {}
    for ann in annotations:
        layers_of.setdefault(ann.rule, set()).add(ann.layer)
    for rel, source in sorted(bundle.modules.items()):
        found = LAYER_PACKAGE.search(source)
        if found is None:
            continue
        layer = found.group(1)
        for line, rule in emitted_rule_ids(source):
            if not RULE_ID.match(rule):
                message = f"emits rule id {rule!r}, which is not {RULE_ID.pattern}"
            elif rule not in layers_of:
                message = f"emits {rule} but no # METADATA block annotates custom.rule: {rule}"
            elif layer not in layers_of[rule]:
                shown = ", ".join(sorted(layers_of[rule]))
                message = f"emits {rule} in layer {layer} but its annotation says layer {shown}"
            else:
                continue
            problems.append(Problem("contract", message, rel, line))
    return problems


def emitted_rule_ids(source: str) -> Iterator[tuple[int, str]]:
    """(line, id) for rule ids a layer module emits: every `"rule": "<id>"` literal, and every
    id-shaped string in a `deny`/`hitl`/`obligations` statement; each once per statement."""
    for start, text in _statements(source):
        head = re.match(r"(?:default\s+)?([A-Za-z_]\w*)", text)
        in_verdict = head is not None and head.group(1) in VERDICT_SETS
        seen: set[str] = set()
        matches = [*_RULE_FIELD.finditer(text), *(_RULE_LIKE.finditer(text) if in_verdict else ())]
        for match in sorted(matches, key=lambda m: m.start()):
            rule = match.group(1)
            if rule not in seen:
                seen.add(rule)
                yield start + text.count("\n", 0, match.start()), rule


def check_directory(
    directory: Path, catalog_dir: Path | None, engine: CheckEngine = "embedded"
) -> list[Problem]:
    """`check_bundle` for `engine`, then the engine divergences, on a bundle directory or
    tarball, with the catalog read from `catalog_dir`."""
    catalog: Catalog | None = None
    problems: list[Problem] = []
    if catalog_dir is not None:
        try:
            catalog = load_catalog(catalog_dir)
        except CatalogError as exc:
            problems += [Problem("catalog", text, str(catalog_dir)) for text in exc.problems]
    try:
        bundle = read_bundle(directory)
    except BundleError as exc:
        return [*problems, _bundle_problem(exc)]
    return problems + check_bundle(bundle, catalog, engine) + divergence_problems(bundle)


def main_check(directory: Path, catalog_dir: Path | None, engine: CheckEngine = "embedded") -> int:
    """Print each problem and a summary; return 0 when there are none, else 1."""
    problems = check_directory(directory, catalog_dir, engine)
    for problem in problems:
        print(problem)
    if problems:
        files = {p.file for p in problems if p.file}
        print(f"FAIL: {len(problems)} problem(s) in {len(files)} file(s) under {directory}")
        return 1
    checked = "" if catalog_dir is not None else " (no catalog: threat ids not checked)"
    try:
        bundle = read_bundle(directory)
        counted = f"{len(bundle.modules)} modules and {len(bundle.tests)} test files"
    except BundleError:
        counted = "bundle"
    print(f"ok: {counted} in {directory} pass policy check for the {engine} engine{checked}")
    return 0


def _parse_problems(bundle: Bundle) -> list[Problem]:
    problems: list[Problem] = []
    for rel, source in sorted({**bundle.modules, **bundle.tests}.items()):
        rego = regopy.Interpreter()
        rego.log_level = regopy.LogLevel.NONE
        try:
            rego.add_module(rel, source)
        except regopy.RegoError as exc:
            problems.append(_parse_problem(rel, source, str(exc)))
    return problems


def _parse_problem(rel: str, source: str, text: str) -> Problem:
    match = _REGO_ERROR.search(text)
    if match is None:
        return Problem("parse_error", " ".join(text.split())[:300], rel)
    length, begin = int(match.group("n")), match.end()
    message = text[begin : begin + length]
    offset = int(match.group("offset"))
    line = source.encode()[:offset].count(b"\n") + 1
    return Problem("parse_error", message, rel, line)


def _located(text: str) -> Problem:
    match = _LOCATED.match(text)
    if match is None:
        return Problem("contract", _one_line(text))
    rest = _one_line(match.group("rest"))
    return Problem("contract", rest, match.group("file"), int(match.group("line")))


def _one_line(text: str) -> str:
    """A (YAML) error message on one line: up to its `line N, column M`, without the excerpt."""
    kept: list[str] = []
    for line in text.splitlines():
        if line.strip():
            kept.append(line.strip())
        if ", column " in line:
            break
    return " ".join(kept)


def _bundle_problem(exc: BundleError) -> Problem:
    return Problem("bundle_error", exc.message)


def _statements(source: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of each top-level statement, comments blanked, strings kept."""
    lines = source.splitlines()
    start: int | None = None
    depth = 0
    raw = False
    chunk: list[str] = []
    for number, line in enumerate(lines, 1):
        code, depth, raw, top = scan_line(line, depth, raw)
        begins = (
            top and bool(code.strip()) and code[0] not in " \t}])" and not code.startswith("else")
        )
        if begins:
            if start is not None:
                yield start, "\n".join(chunk)
            start, chunk = number, []
        if start is not None:
            chunk.append(code)
    if start is not None:
        yield start, "\n".join(chunk)


def refuse_unchecked(bundle: Bundle, catalog_dir: Path | None) -> None:
    """Raise BundleError listing every `check_bundle` problem; the service calls this before it
    activates a bundle. A `catalog_dir` that does not exist skips the threat-id checks."""
    catalog = None
    if catalog_dir is not None and catalog_dir.is_dir():
        try:
            catalog = load_catalog(catalog_dir)
        except CatalogError as exc:
            raise BundleError(
                f"the catalog in {catalog_dir} is invalid, so no bundle can be checked",
                errors=[{"code": "catalog", "message": text} for text in exc.problems],
            ) from exc
    problems = check_bundle(bundle, catalog)
    if problems:
        raise BundleError(
            f"bundle {bundle.revision} fails policy check with {len(problems)} problem(s); "
            f"first: {problems[0]}",
            errors=[problem.as_error() for problem in problems],
        )
