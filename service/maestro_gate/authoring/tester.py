"""`maestro-gate policy test`: run the `test_*` rules of `*_test.rego` files, like `opa test`.

On the embedded engine (the default) every module, test file and `data.json` of the directory
is loaded into one regopy interpreter (data placed at the path of its directory, as OPA does;
`.manifest` is not needed). Each test rule is evaluated as `data.<package>.<test>`: it passes
only when it evaluates to `true`; undefined or any other value is a failure; an evaluation
error is an error. A module that does not compile, or a call to a built-in the engine lacks,
is an error of the whole run.

A test file that replaces the whole input (`with input as ...`) is not run: regopy 1.5.2 kills
the process (SIGSEGV) when a policy then compares an input value. Its tests are reported as
errors; set the input one key at a time (`with input.kind as ... with input.subject as ...`).

`engine="opa"` runs the same tests on OPA's own evaluator instead (`authoring.opa_tester`),
in one process, `with input as ...` included, with the same report.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import regopy

from maestro_gate.core.errors import BundleError
from maestro_gate.engine.bundle import read_bundle, unsupported_builtins

Outcome = Literal["pass", "fail", "error"]
TestEngine = Literal["embedded", "opa"]

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_WHOLE_INPUT = re.compile(r"\bwith\s+input\s+as\b")
_TEST_RULE = re.compile(r"^(test_\w+)\b(?=\s*(?:if\b|:=|=|\{|contains\b))", re.MULTILINE)


@dataclass(frozen=True)
class TestResult:
    """The outcome of one `test_*` rule."""

    __test__ = False  # not a pytest test class

    file: str
    package: str
    name: str
    outcome: Outcome
    duration_ns: int = 0
    detail: str = ""

    @property
    def query(self) -> str:
        """The document the test evaluates, e.g. `data.maestro.decision_test.test_allow`."""
        return f"data.{self.package}.{self.name}"


@dataclass(frozen=True)
class TestReport:
    """All test results of a run, plus problems that stopped the bundle from loading cleanly."""

    __test__ = False  # not a pytest test class

    root: Path
    results: list[TestResult] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Number of tests that evaluated to true."""
        return sum(r.outcome == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        """Number of tests that were undefined or not true."""
        return sum(r.outcome == "fail" for r in self.results)

    @property
    def errors(self) -> int:
        """Number of tests that raised an evaluation error, plus load errors."""
        return sum(r.outcome == "error" for r in self.results) + len(self.load_errors)

    @property
    def ok(self) -> bool:
        """True when at least one test ran and nothing failed or errored."""
        return bool(self.results) and self.failed == 0 and self.errors == 0

    def summary(self) -> str:
        """The closing line: `N passed, N failed`, plus `, N errors` when there are any."""
        line = f"{self.passed} passed, {self.failed} failed"
        return f"{line}, {self.errors} errors" if self.errors else line


def run_tests(
    policy_dir: Path, pattern: str | None = None, engine: TestEngine = "embedded"
) -> TestReport:
    """Run every `test_*` rule under `policy_dir` whose query matches the `pattern` regex.

    On the embedded engine each test file runs in its own short-lived process and interpreter
    (all modules, the test files that define no tests, and the file itself): rego-cpp compiles
    every `with` by copying the rules it touches and does not give that memory back, and a crash
    of the engine must not take the runner down with it. On `opa` all tests run in this process
    on one engine.
    """
    modules, tests, data = _load(policy_dir)
    selector = re.compile(pattern) if pattern else None
    found = [
        (rel, package, name)
        for rel, package, name in discover(tests)
        if selector is None or selector.search(f"data.{package}.{name}")
    ]
    if engine == "opa":
        from maestro_gate.authoring.opa_tester import run_opa_tests

        return run_opa_tests(modules, tests, data, found, policy_dir)
    probe = regopy.Interpreter()
    load_errors = [
        f"{_shown(policy_dir, file)}: calls {name}, a built-in the embedded engine lacks"
        for file, name in unsupported_builtins({**modules, **tests}, probe.is_builtin)
    ]
    for rel, source in sorted({**modules, **tests}.items()):
        try:
            probe.add_module(rel, source)
        except regopy.RegoError as exc:
            load_errors.append(f"{_shown(policy_dir, rel)}: does not compile: {_first_line(exc)}")
    del probe
    if any("does not compile" in e for e in load_errors):
        return TestReport(root=policy_dir, load_errors=load_errors)
    with_tests = {rel for rel, _, _ in discover(tests)}
    helpers = {rel: src for rel, src in tests.items() if rel not in with_tests}
    results: list[TestResult] = []
    for rel in sorted({rel for rel, _, _ in found}):
        names = [(package, name) for file, package, name in found if file == rel]
        shown = _shown(policy_dir, rel)
        if _WHOLE_INPUT.search(_uncommented(tests[rel])):
            results.extend(_refused(shown, package, name) for package, name in names)
            continue
        sources = {**modules, **helpers, rel: tests[rel]}
        results.extend(_run_isolated(sources, data, shown, names))
    return TestReport(root=policy_dir, results=results, load_errors=load_errors)


def discover(tests: dict[str, str]) -> list[tuple[str, str, str]]:
    """(file, package, test name) for every `test_*` rule, in file order, each name once."""
    found: list[tuple[str, str, str]] = []
    for rel, source in sorted(tests.items()):
        package = _PACKAGE.search(source)
        if package is None:
            continue
        names = dict.fromkeys(_TEST_RULE.findall(source))
        found.extend((rel, package.group(1), name) for name in names)
    return found


def format_report(report: TestReport, verbose: bool = False) -> str:
    """Render a report like `opa test`: failures and errors by file and query, then the summary."""
    lines = [f"ERROR: {problem}" for problem in report.load_errors]
    for result in report.results:
        if result.outcome == "pass" and not verbose:
            continue
        line = f"{result.outcome.upper()}: {result.file}: {result.query}"
        if verbose:
            line += f" ({result.duration_ns / 1e6:.3f}ms)"
        if result.detail and result.outcome != "pass":
            line += f"\n    {result.detail}"
        lines.append(line)
    if not report.results and not report.load_errors:
        lines.append(f"no tests found under {report.root}")
    lines.append(report.summary())
    return "\n".join(lines)


def _run_one(
    rego: regopy.Interpreter, program: regopy.Bundle | None, file: str, package: str, name: str
) -> TestResult:
    started = time.perf_counter_ns()
    try:
        if program is None:
            output = rego.query(f"data.{package}.{name}")
        else:
            output = rego.query_bundle_entrypoint(program, _entrypoint(package, name))
    except regopy.RegoError as exc:
        return TestResult(file, package, name, "error", _since(started), _first_line(exc))
    except ValueError as exc:  # regopy could not parse the engine's output as JSON
        return TestResult(file, package, name, "error", _since(started), f"bad output: {exc}")
    elapsed = _since(started)
    if not output.ok():
        text = str(output)
        detail = text if text and text != "<error>" else "evaluation error"
        return TestResult(file, package, name, "error", elapsed, detail)
    values = _expressions(output)
    if values == [True]:
        return TestResult(file, package, name, "pass", elapsed)
    detail = "undefined" if not values else f"evaluated to {values[0]!r}, not true"
    return TestResult(file, package, name, "fail", elapsed, detail)


def _entrypoint(package: str, name: str) -> str:
    return f"{package.replace('.', '/')}/{name}"


def _run_isolated(
    sources: dict[str, str], data: dict[str, Any], shown: str, names: list[tuple[str, str]]
) -> list[TestResult]:
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            return pool.submit(_run_file, sources, data, shown, names).result()
        except BrokenProcessPool:
            detail = "the policy engine crashed while evaluating this file"
            return [TestResult(shown, package, name, "error", 0, detail) for package, name in names]


def _run_file(
    sources: dict[str, str], data: dict[str, Any], shown: str, names: list[tuple[str, str]]
) -> list[TestResult]:
    """Compile one test file with the modules and run its tests (in a worker process).

    The file's tests are compiled once, as the entrypoints of one program, and each runs as an
    entrypoint of it: a plain query would compile the whole bundle again for every test (about
    2 s and 400 MB each, never given back). When the program does not compile, each test runs
    as its own query, so the error is reported on the tests it concerns.
    """
    rego = regopy.Interpreter()
    rego.strict_built_in_errors = True
    for module, source in sorted(sources.items()):
        rego.add_module(module, source)
    rego.add_data(data)
    program: regopy.Bundle | None
    try:
        program = rego.build(None, [_entrypoint(package, name) for package, name in names])
    except regopy.RegoError:
        program = None
    if program is not None and not program.ok():
        program = None
    return [_run_one(rego, program, shown, package, name) for package, name in names]


def _refused(file: str, package: str, name: str) -> TestResult:
    detail = (
        "not run: the file uses `with input as`, which crashes regopy; set input keys one by one"
    )
    return TestResult(file, package, name, "error", 0, detail)


def _uncommented(source: str) -> str:
    return re.sub(r"#[^\n]*", "", source)


def _expressions(output: Any) -> list[Any]:
    if len(output) == 0:
        return []
    values = getattr(output[0], "expressions", [])
    return list(values) if isinstance(values, list) else []


def _load(policy_dir: Path) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """Modules, tests and merged data of a directory; a bundle with a `.manifest` is read as one."""
    if (policy_dir / ".manifest").is_file():
        bundle = read_bundle(policy_dir)
        return bundle.modules, bundle.tests, bundle.data
    return _load_loose(policy_dir)


def _load_loose(policy_dir: Path) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """A directory without a manifest: the same walk as `read_bundle`, without the manifest."""
    if not policy_dir.is_dir():
        raise BundleError(f"policy directory {policy_dir} does not exist")
    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    data: dict[str, Any] = {}
    for path in sorted(policy_dir.rglob("*")):
        rel_parts = path.relative_to(policy_dir).parts
        if not path.is_file() or any(part.startswith(".") for part in rel_parts):
            continue
        rel = path.relative_to(policy_dir).as_posix()
        if path.suffix == ".rego":
            (tests if path.stem.endswith("_test") else modules)[rel] = path.read_text()
        elif path.name == "data.json":
            try:
                value = json.loads(path.read_bytes())
            except ValueError as exc:
                raise BundleError(f"{rel} is not valid JSON: {exc}") from exc
            _place(data, rel_parts[:-1], value, rel)
    return modules, tests, data


def _place(data: dict[str, Any], keys: tuple[str, ...], value: Any, rel: str) -> None:
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if not keys:
        if not isinstance(value, dict):
            raise BundleError(f"{rel}: a root data.json must hold an object")
        node.update(value)
    elif isinstance(node.get(keys[-1]), dict) and isinstance(value, dict):
        node[keys[-1]].update(value)
    elif keys[-1] in node:
        raise BundleError(f"data at {'/'.join(keys)} is defined twice")
    else:
        node[keys[-1]] = value


def _shown(policy_dir: Path, rel: str) -> str:
    return (policy_dir / rel).as_posix()


def _since(started: int) -> int:
    return time.perf_counter_ns() - started


_ERRORMSG = re.compile(r"\(errormsg \d+:([^)\n]*)\)")
_ERRORLOC = re.compile(r"\(error \d+:([^|\s]+)\|")


def _first_line(exc: Exception) -> str:
    """The useful part of a regopy error: its messages, else its first line."""
    text = str(exc).strip()
    messages = list(dict.fromkeys(_ERRORMSG.findall(text)))
    if messages:
        where = _ERRORLOC.search(text)
        return ("; ".join(messages) + (f" (in {where.group(1)})" if where else "")).strip()
    return text.splitlines()[0] if text else type(exc).__name__
