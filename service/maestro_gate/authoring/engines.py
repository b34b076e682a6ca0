"""What `policy check --engine E` asks of a bundle for the engine it is going to run on.

- `embedded` (rego-cpp): every module parses and compiles in regopy, and every call names a
  function of the bundle or a built-in `regopy.Interpreter().is_builtin` knows.
- `opa` and `opa-inprocess` (both OPA's own evaluator): every module parses and the bundle
  compiles on `opa_bindings`; OPA's `rego_type_error: undefined function NAME` becomes an
  `unsupported_builtin` problem at its file:line, any other compile error a `compile_error`.

On every engine, `engine_divergence` problems name the constructs that mean one thing on
rego-cpp and another on OPA (`authoring.divergence`): a decision must not depend on the engine.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from maestro_gate.engine.bundle import Bundle

if TYPE_CHECKING:
    from maestro_gate.authoring.check import Problem

CheckEngine = Literal["embedded", "opa", "opa-inprocess"]
ENGINES: tuple[CheckEngine, ...] = ("embedded", "opa", "opa-inprocess")
_OPA_ERROR = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<code>[a-z_]+): (?P<message>.*)$")
_UNDEFINED_FUNCTION = re.compile(r"^undefined function (?P<name>\S+)$")


def opa_problems(bundle: Bundle) -> list[Problem]:
    """Parse and compile problems of the bundle on OPA's engine, each at its file:line."""
    from opa_bindings import OpaEngine, OpaError

    from maestro_gate.authoring.opa_tester import located_errors

    engine = OpaEngine()
    errors: list[str] = []
    try:
        for rel, source in sorted({**bundle.modules, **bundle.tests}.items()):
            try:
                engine.add_policy(rel, source)
            except OpaError as exc:
                errors += located_errors(exc.message)
        if not errors:
            try:
                engine.add_data(bundle.data)
                engine.eval_query("true")
            except OpaError as exc:
                errors += located_errors(exc.message)
    finally:
        engine.close()
    return [_opa_problem(text) for text in errors]


def _opa_problem(text: str) -> Problem:
    from maestro_gate.authoring.check import Problem

    match = _OPA_ERROR.match(text)
    if match is None:
        return Problem("compile_error", text)
    file, line, message = match["file"], int(match["line"]), match["message"]
    missing = _UNDEFINED_FUNCTION.match(message)
    if missing is not None:
        name = missing["name"]
        return Problem("unsupported_builtin", f"calls {name}, which OPA's engine lacks", file, line)
    code = "parse_error" if match["code"] == "rego_parse_error" else "compile_error"
    return Problem(code, f"{match['code']}: {message}", file, line)


def divergence_problems(bundle: Bundle) -> list[Problem]:
    """The `engine_divergence` problems of every module and test file of the bundle."""
    from maestro_gate.authoring.check import Problem
    from maestro_gate.authoring.divergence import CODE, divergences

    return [
        Problem(CODE, found.message, found.file, found.line)
        for found in divergences({**bundle.modules, **bundle.tests})
    ]
