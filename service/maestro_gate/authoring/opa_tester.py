"""`maestro-gate policy test --engine opa`: the `test_*` rules on OPA's own evaluator.

Every module, test file and `data.json` of the directory is loaded into one in-process OPA
engine (`opa_bindings`, OPA's `v1/rego` package), in one process, as `opa test` loads them; so
`with input as ...` and chained `with` work as they do there. A test passes only when it
evaluates to `true`; undefined or any other value is a failure; an evaluation error (OPA runs
built-ins strictly here, so `1 / 0` is one) is an error. A module that does not parse, or a
bundle that does not compile (an undefined function, a type error), is a load error of the
whole run naming file:line, and no test runs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

from maestro_gate.authoring.tester import TestReport, TestResult

_LOCATED = re.compile(r"^\s*(?P<where>\S+:\d+): (?P<what>.+)$")


def run_opa_tests(
    modules: dict[str, str],
    tests: dict[str, str],
    data: dict[str, Any],
    found: list[tuple[str, str, str]],
    policy_dir: Path,
) -> TestReport:
    """Run the `found` (file, package, test name) tests with every module, test file and the
    data loaded into one OPA engine; files are named by their path under `policy_dir`."""
    engine = OpaEngine()
    try:
        load_errors = _load(engine, {**modules, **tests}, data, policy_dir)
        if load_errors:
            return TestReport(root=policy_dir, load_errors=load_errors)
        results = [
            _run_one(engine, (policy_dir / rel).as_posix(), package, name)
            for rel, package, name in found
        ]
    finally:
        engine.close()
    return TestReport(root=policy_dir, results=results)


def _load(
    engine: OpaEngine, sources: dict[str, str], data: dict[str, Any], policy_dir: Path
) -> list[str]:
    """Add every source and the data; compile once. The problems, each `file:line: message`."""
    problems: list[str] = []
    for rel, source in sorted(sources.items()):
        try:
            engine.add_policy((policy_dir / rel).as_posix(), source)
        except OpaError as exc:
            problems += located_errors(exc.message)
    if problems:
        return problems
    try:
        engine.add_data(data)
        engine.eval_query("true")  # compiles the whole bundle, as `opa test` does before a run
    except OpaError as exc:
        return located_errors(exc.message)
    return []


def _run_one(engine: OpaEngine, file: str, package: str, name: str) -> TestResult:
    started = time.perf_counter_ns()
    try:
        value = engine.eval_document(f"{package}.{name}")
    except OpaUndefinedError:
        return TestResult(file, package, name, "fail", _since(started), "undefined")
    except OpaError as exc:
        return TestResult(file, package, name, "error", _since(started), exc.message)
    elapsed = _since(started)
    if value is True:
        return TestResult(file, package, name, "pass", elapsed)
    return TestResult(file, package, name, "fail", elapsed, f"evaluated to {value!r}, not true")


def located_errors(message: str) -> list[str]:
    """OPA's `N errors occurred: f:l: msg` text as one `f:l: msg` entry per error; text that
    names no location is kept whole, on one line."""
    located = [
        f"{match['where']}: {match['what'].strip()}"
        for line in message.splitlines()
        for match in [_LOCATED.match(line.split("occurred: ", 1)[-1])]
        if match is not None
    ]
    return located or [" ".join(message.split())]


def _since(started: int) -> int:
    return time.perf_counter_ns() - started
