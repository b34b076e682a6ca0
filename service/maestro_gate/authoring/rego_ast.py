"""Rego modules as OPA's parser reads them, for the static checks of `policy check`.

OPA's `rego.parse_module` built-in (run on `opa_bindings`) gives each module's AST as JSON, but
without locations. Lines are put back two ways: every call of a watched built-in
(`object.subset`, `sort`) is renamed in the text before parsing to `__mg_<key>_<line>`, so the
AST says where it is (`call_name` gives the real name back, `call_line` the line), and each
negated expression is matched, in source order, with the `not` keyword of the same rank
(`Module.nots`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opa_bindings import OpaEngine, OpaError

Term = dict[str, Any]
WATCHED = {"subset": "object.subset", "sort": "sort"}
_MARKER = re.compile(r"^__mg_(?P<key>subset|sort)_(?P<line>\d+)$")
_WATCHED_CALL = re.compile(r"(?<![\w.])(?P<name>object\.subset|sort)(?=\s*\()")
_NOT = re.compile(r"(?<![\w.])not\b")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
INFIX = {
    "equal": "==", "eq": "=", "neq": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=",
    "plus": "+", "minus": "-", "mul": "*", "div": "/", "rem": "%", "and": "&", "or": "|",
    "internal.member_2": "in", "assign": ":=",
}  # fmt: skip


@dataclass
class Module:
    """One parsed module: its file, package path, import aliases and rules (OPA's JSON AST)."""

    file: str
    package: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]
    rules: list[Term]
    nots: dict[int, int] = field(default_factory=dict)  # id(negated expr) -> line


def parse_modules(sources: dict[str, str]) -> list[Module]:
    """Parse each source that OPA accepts (the others are reported by the parse check)."""
    engine = OpaEngine()
    modules: list[Module] = []
    try:
        for file, source in sorted(sources.items()):
            marked = _mark_calls(source)
            try:
                rows = engine.eval_query(
                    "m := rego.parse_module(input.file, input.source)",
                    {"file": file, "source": marked},
                )
            except OpaError:
                continue
            modules.append(_module(file, rows[0]["m"], source))
    finally:
        engine.close()
    return modules


def _module(file: str, ast: Term, source: str) -> Module:
    package = tuple(str(t["value"]) for t in ast["package"]["path"][1:])
    aliases: dict[str, tuple[str, ...]] = {}
    for imp in ast.get("imports", []):
        path = imp["path"]["value"]
        if path[0]["value"] != "data":
            continue
        parts = tuple(str(t["value"]) for t in path[1:])
        aliases[imp.get("alias") or parts[-1]] = parts
    module = Module(file, package, aliases, ast.get("rules", []))
    negations = [expr for rule in module.rules for expr in rule_exprs(rule) if expr.get("negated")]
    lines = [_line(source, m.start()) for m in _NOT.finditer(_masked(source))]
    if len(lines) == len(negations):  # else the ranks cannot be trusted: no lines
        module.nots = {id(expr): line for expr, line in zip(negations, lines, strict=True)}
    return module


def _mark_calls(source: str) -> str:
    """The source with each watched call renamed `__mg_<key>_<line>`."""
    keys = {name: key for key, name in WATCHED.items()}
    out: list[str] = []
    last = 0
    for match in _WATCHED_CALL.finditer(_masked(source)):
        out.append(source[last : match.start()])
        out.append(f"__mg_{keys[match['name']]}_{_line(source, match.start())}")
        last = match.end()
    out.append(source[last:])
    return "".join(out)


def _masked(source: str) -> str:
    """The source with comments and string contents blanked (same length, same newlines)."""
    out = list(source)
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "#":
            while i < n and source[i] != "\n":
                out[i] = " "
                i += 1
        elif char in '"`':
            j = i + 1
            while j < n and source[j] != char:
                if char == '"' and source[j] == "\\":
                    j += 1
                j += 1
            for k in range(i + 1, min(j, n)):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _line(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def parts(term: Term) -> tuple[str, Any]:
    """A term's type and value (a `null` term has no value)."""
    return str(term.get("type")), term.get("value")


def call_name(term: Term) -> str:
    """The dotted name of a call term's (or call expression's) operator, e.g. `object.get`."""
    name = _operator_name(term)
    marker = _MARKER.match(name)
    return WATCHED[marker["key"]] if marker else name


def call_line(term: Term) -> int | None:
    """The line of a watched call (`object.subset`, `sort`), else None."""
    marker = _MARKER.match(_operator_name(term))
    return int(marker["line"]) if marker else None


def _operator_name(term: Term) -> str:
    operator = term["value"][0] if term.get("type") == "call" else term["terms"][0]
    return ".".join(str(t["value"]) for t in operator["value"])


def rule_exprs(rule: Term) -> Iterator[Term]:
    """Every expression of a rule, in source order: head, body, then its `else` chain."""
    while rule:
        head = rule.get("head", {})
        for term in _head_terms(head):
            yield from term_exprs(term)
        for expr in rule.get("body", []):
            yield from expr_exprs(expr)
        rule = rule.get("else") or {}


def expr_exprs(expr: Term) -> Iterator[Term]:
    """The expression, then every expression nested in it (comprehensions, `every`)."""
    yield expr
    terms = expr["terms"]
    for term in terms[1:] if isinstance(terms, list) else _plain_terms(terms):
        yield from term_exprs(term)
    for inner in every_body(expr) or []:
        yield from expr_exprs(inner)
    for modifier in expr.get("with", []):
        yield from term_exprs(modifier["value"])


def term_exprs(term: Term) -> Iterator[Term]:
    """Expressions of the query bodies nested in a term, in source order."""
    kind, value = parts(term)
    if kind in ("ref", "array", "set", "call"):
        for item in value:
            yield from term_exprs(item)
    elif kind == "object":
        for key, item in value:
            yield from term_exprs(key)
            yield from term_exprs(item)
    elif kind in ("arraycomprehension", "setcomprehension", "objectcomprehension"):
        for part in ("key", "value") if kind == "objectcomprehension" else ("term",):
            yield from term_exprs(value[part])
        for expr in value["body"]:
            yield from expr_exprs(expr)


def _plain_terms(terms: Term) -> list[Term]:
    if "symbols" in terms:
        return list(terms["symbols"])
    return [terms["domain"]] if "domain" in terms else [terms]


def expr_terms(expr: Term) -> list[Term]:
    """The operand terms of an expression: call operands, `some` symbols, an `every` domain."""
    terms = expr["terms"]
    return list(terms[1:]) if isinstance(terms, list) else _plain_terms(terms)


def every_body(expr: Term) -> list[Term] | None:
    """The body of an `every` expression, or None when the expression is not one."""
    terms = expr["terms"]
    return terms["body"] if isinstance(terms, dict) and "domain" in terms else None


def walk(term: Term) -> Iterator[Term]:
    """The term and every term inside it, comprehension terms and bodies included."""
    yield term
    kind, value = parts(term)
    if kind in ("ref", "array", "set", "call"):
        for item in value:
            yield from walk(item)
    elif kind == "object":
        for key, item in value:
            yield from walk(key)
            yield from walk(item)
    elif kind in ("arraycomprehension", "setcomprehension"):
        yield from walk(value["term"])
    elif kind == "objectcomprehension":
        yield from walk(value["key"])
        yield from walk(value["value"])


def _head_terms(head: Term) -> list[Term]:
    terms = list(head.get("ref", [])[1:]) + list(head.get("args", []))
    if "value" in head:
        terms.append(head["value"])
    elif "key" in head:
        terms.append(head["key"])
    return terms


def render(term: Term) -> str:
    """Rego text for a term or expression (comprehension bodies abbreviated)."""
    if "terms" in term:
        terms = term["terms"]
        if isinstance(terms, list):
            return _render_call(terms[0], terms[1:])
        return render(terms) if "type" in terms else "..."
    kind, value = parts(term)
    if kind == "var":
        return str(value)
    if kind in ("null", "boolean", "number", "string"):
        return json.dumps(value)
    if kind == "ref":
        text = render(value[0])
        for key in value[1:]:
            plain = key["type"] == "string" and _IDENT.match(key["value"])
            text += f".{key['value']}" if plain else f"[{render(key)}]"
        return text
    if kind == "call":
        return _render_call(value[0], value[1:])
    if kind == "array":
        return "[" + ", ".join(render(t) for t in value) + "]"
    if kind == "set":
        return "{" + ", ".join(render(t) for t in value) + "}" if value else "set()"
    if kind == "object":
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in value) + "}"
    if kind == "arraycomprehension":
        return f"[{render(value['term'])} | ...]"
    if kind == "setcomprehension":
        return f"{{{render(value['term'])} | ...}}"
    if kind == "objectcomprehension":
        return f"{{{render(value['key'])}: {render(value['value'])} | ...}}"
    return "..."


def _render_call(operator: Term, args: list[Term]) -> str:
    name = ".".join(str(t["value"]) for t in operator["value"])
    marker = _MARKER.match(name)
    name = WATCHED[marker["key"]] if marker else name
    if name in INFIX and len(args) == 2:
        return f"{render(args[0])} {INFIX[name]} {render(args[1])}"
    return f"{name}({', '.join(render(a) for a in args)})"
