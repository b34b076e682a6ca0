"""Rego constructs whose meaning differs between rego-cpp (the embedded engine) and OPA.

`divergences` reads every module as OPA parses it (`authoring.rego_ast`) and reports, with
file:line and the safe rewrite:

- a negated call or comparison (`not x >= y`, `not a in b`, `not f(x)`, `not sprintf(...) == s`)
  whose operand can be undefined. OPA evaluates such an operand before the `not` (`tmp := x;
  not tmp >= y`, OPA issue 1877), so an undefined operand fails the body; rego-cpp answers the
  `not` with true. A negated `==` of plain references, and a negated rule reference whose keys
  are bound, mean the same on both and are not reported.
- `object.subset` whose arguments are not both provably sets or both provably objects: on two
  arrays rego-cpp crashes (SIGSEGV on two empty ones), and an array against a set answers
  differently from OPA.
- `sort` of a value that can be a set: rego-cpp returns a set (`%v` prints `{...}`, indexing
  fails), OPA an array.

An operand "can be undefined" when it reads a path into `input`, `data`, another package or a
local value, a rule without a default, a function result, or a built-in over such a value;
unless the same body (or the rule's head) already reads that path outside a `not`, since the
body then fails on both engines alike. A bound local variable, a literal, a comprehension and a
rule with a default or an unconditional value are always defined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from maestro_gate.authoring.rego_ast import (
    Module,
    Term,
    call_line,
    call_name,
    every_body,
    expr_terms,
    parse_modules,
    parts,
    render,
    rule_exprs,
)
from maestro_gate.authoring.rules import RuleIndex

CODE = "engine_divergence"
_SCALARS = ("null", "boolean", "number", "string")
_COMPREHENSIONS = ("arraycomprehension", "setcomprehension", "objectcomprehension")
_SHAPES = {
    "array": "array", "arraycomprehension": "array", "set": "set", "setcomprehension": "set",
    "object": "object", "objectcomprehension": "object",
}  # fmt: skip
_SET_BUILTINS = {
    "intersection", "union", "and", "or", "cast_set", "object.keys", "graph.reachable",
    "graph.reachable_paths", "net.cidr_expand", "net.cidr_merge",
}  # fmt: skip


@dataclass(frozen=True)
class Divergence:
    """One construct that means different things on the two engines, and its safe rewrite."""

    file: str
    line: int | None
    message: str


def divergences(sources: dict[str, str]) -> list[Divergence]:
    """Every divergent construct in `sources` (file -> Rego text), in file and line order."""
    modules = parse_modules(sources)
    index = RuleIndex(modules)

    def value_defined(module: Module, rule: Term, value: Term) -> bool:
        return not _RuleCheck(index, module, rule)._undefined(value, Scope())

    def value_shape(module: Module, rule: Term, value: Term) -> str | None:
        check = _RuleCheck(index, module, rule)
        return check._shape(value, check._child(Scope(), rule.get("body", [])), 0)

    index.value_defined, index.value_shape = value_defined, value_shape
    found: list[Divergence] = []
    for module in modules:
        for rule in module.rules:
            found += _RuleCheck(index, module, rule).run()
    return sorted(set(found), key=lambda d: (d.file, d.line or 0, d.message))


@dataclass
class Scope:
    """What a query body knows: its local bindings and the references it already requires."""

    bindings: dict[str, Any] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)


class _RuleCheck:
    def __init__(self, index: RuleIndex, module: Module, rule: Term) -> None:
        self.index, self.module, self.rule = index, module, rule
        self.declared = _declared(rule)
        self.found: list[Divergence] = []

    def run(self) -> list[Divergence]:
        rule: Term = self.rule
        while rule:
            head = rule.get("head", {})
            heads = [*head.get("ref", [])[1:], *[head[k] for k in ("key", "value") if k in head]]
            scope = self._child(Scope(), rule.get("body", []), heads)
            self._body(rule.get("body", []), scope)
            for term in heads:
                self._scan(term, scope)
            rule = rule.get("else") or {}
        return self.found

    # --- walking ------------------------------------------------------------------------

    def _child(self, outer: Scope, body: list[Term], heads: list[Term] | None = None) -> Scope:
        scope = Scope(dict(outer.bindings), set(outer.required))
        for expr in body:
            self._bind(expr, scope)
        for term in [*(heads or []), *(t for e in body if _positive(e) for t in _operands(e))]:
            scope.required |= set(_required_refs(term))
        return scope

    def _bind(self, expr: Term, scope: Scope) -> None:
        terms = expr["terms"]
        if isinstance(terms, list) and call_name(expr) in ("assign", "eq") and len(terms) == 3:
            left, right = terms[1], terms[2]
            for var, value in ((left, right), (right, left)):
                if var.get("type") == "var" and self._local(var["value"]):
                    scope.bindings.setdefault(var["value"], value)
        elif isinstance(terms, dict) and "symbols" in terms:
            for symbol in terms["symbols"]:
                if symbol.get("type") == "call":  # some x in xs / some k, v in xs
                    *names, domain = symbol["value"][1:]
                    for name in names:
                        if name.get("type") == "var":
                            scope.bindings[name["value"]] = ("element", domain)

    def _body(self, body: list[Term], scope: Scope) -> None:
        for expr in body:
            terms = expr["terms"]
            if expr.get("negated"):
                self._negation(expr, scope)
            if isinstance(terms, list) and call_line(expr) is not None:
                self._watched(call_name(expr), call_line(expr), terms[1:], scope)
            inner = every_body(expr)
            if inner is not None:
                child = Scope(dict(scope.bindings), set(scope.required))
                for part in ("key", "value"):
                    if terms.get(part) and terms[part].get("type") == "var":
                        child.bindings[terms[part]["value"]] = ("element", terms["domain"])
                self._body(inner, self._child(child, inner))
            for term in expr_terms(expr) + [w["value"] for w in expr.get("with", [])]:
                self._scan(term, scope)

    def _scan(self, term: Term, scope: Scope) -> None:
        kind, value = parts(term)
        if kind == "call":
            line = call_line(term)
            if line is not None:
                self._watched(call_name(term), line, value[1:], scope)
        if kind in ("ref", "array", "set", "call"):
            for item in value:
                self._scan(item, scope)
        elif kind == "object":
            for pair in value:
                for item in pair:
                    self._scan(item, scope)
        elif kind in _COMPREHENSIONS:
            child = self._child(scope, value["body"])
            self._body(value["body"], child)
            for part in ("term", "key", "value"):
                if part in value:
                    self._scan(value[part], child)

    # --- the three reports --------------------------------------------------------------

    def _negation(self, expr: Term, scope: Scope) -> None:
        terms = expr["terms"]
        if not isinstance(terms, list):
            culprits = self._key_culprits(terms, scope) if terms.get("type") == "ref" else []
        elif call_name(expr) in ("eq", "equal"):
            culprits = []
            for arg in terms[1:]:
                if arg.get("type") == "ref":
                    culprits += self._key_culprits(arg, scope)
                elif arg.get("type") != "var" and self._undefined(arg, scope):
                    culprits.append(self._culprit(arg, scope))
        else:
            culprits = [self._culprit(a, scope) for a in terms[1:] if self._undefined(a, scope)]
        if culprits:
            shown = render(culprits[0])
            self._report(
                self.module.nots.get(id(expr)),
                f"`not {render(expr)}`: when `{shown}` is undefined OPA fails the whole body, "
                "while the embedded engine takes the `not` as true; rewrite: bind it first "
                f"(`v := {shown}`) and negate a helper rule on `v`, or read it with "
                "object.get and a default (a negated `==` of plain references is safe)",
            )

    def _watched(self, name: str, line: int | None, args: list[Term], scope: Scope) -> None:
        shapes = [self._shape(arg, scope, 0) for arg in args]
        shown = ", ".join(render(a) for a in args)
        if name == "object.subset" and not (
            len(set(shapes)) == 1 and shapes[0] in ("set", "object")
        ):
            sets = ", ".join(f"{{x | some x in {render(a)}}}" for a in args)
            self._report(
                line,
                f"`object.subset({shown})`: the arguments are not provably both sets or both "
                "objects; on two arrays the embedded engine crashes (SIGSEGV on two empty "
                "arrays) and an array against a set answers differently from OPA; rewrite: "
                f"convert both to sets first, `object.subset({sets})`",
            )
        elif name == "sort" and shapes and shapes[0] in ("set", None):
            self._report(
                line,
                f"`sort({shown})`: the argument can be a set, and the embedded engine's sort of a "
                "set returns a set (`%v` prints `{...}` where OPA prints `[...]`, and indexing "
                f"it fails); rewrite: sort an array, `sort([x | some x in {shown}])`",
            )

    def _report(self, line: int | None, message: str) -> None:
        self.found.append(Divergence(self.module.file, line, message))

    # --- definedness and shape ----------------------------------------------------------

    def _local(self, name: str) -> bool:
        return name in self.declared or not self.index.is_global(self.module, name)

    def _undefined(self, term: Term, scope: Scope) -> bool:
        """Whether `term` can be undefined where it stands (False: provably defined)."""
        kind, value = parts(term)
        if kind in _SCALARS or kind in _COMPREHENSIONS:
            return False
        if kind == "var":
            if self._local(value) or _key([term]) in scope.required:
                return False
            return not self.index.defined(self.module, [term])
        if kind == "ref":
            if _key(value) in scope.required:
                return False
            if any(self._key_culprits(term, scope)):
                return True
            head = value[0]
            if head.get("type") != "var" or self._local(head["value"]):
                return len(value) > 1
            return not self.index.defined(self.module, value)
        if kind == "call":
            if any(self._undefined(arg, scope) for arg in value[1:]):
                return True
            return not self.index.call_defined(self.module, value[0]["value"])
        if kind in ("array", "set"):
            return any(self._undefined(item, scope) for item in value)
        if kind == "object":
            return any(self._undefined(item, scope) for pair in value for item in pair)
        return True

    def _key_culprits(self, ref: Term, scope: Scope) -> list[Term]:
        keys = [k for k in ref["value"][1:] if k.get("type") not in _SCALARS]
        return [self._culprit(k, scope) for k in keys if self._undefined(k, scope)]

    def _culprit(self, term: Term, scope: Scope) -> Term:
        """The innermost part of an undefined-capable term that makes it so."""
        kind, value = parts(term)
        inner = {"call": value[1:] if kind == "call" else [], "array": value, "set": value}
        inner["object"] = [i for p in value for i in p] if kind == "object" else []
        for part in inner.get(kind, []):
            if self._undefined(part, scope):
                return self._culprit(part, scope)
        return term

    def _shape(self, term: Term, scope: Scope, depth: int) -> str | None:
        """set, object, array, scalar, json (any JSON value: never a set), or None (unknown)."""
        kind, value = parts(term)
        if depth > 20:
            return None
        if kind in _SCALARS:
            return "scalar"
        if kind in _SHAPES:
            return _SHAPES[kind]
        if kind == "var" and self._local(value):
            bound = scope.bindings.get(value)
            if isinstance(bound, tuple):
                return "json" if self._shape(bound[1], scope, depth + 1) == "json" else None
            return self._shape(bound, scope, depth + 1) if bound is not None else None
        if kind in ("var", "ref"):
            ref = [term] if kind == "var" else value
            head = ref[0]
            if head.get("type") == "var" and self._local(head["value"]):
                inner = self._shape(head, scope, depth + 1)
                return "json" if inner == "json" else None
            return self.index.shape(self.module, ref)
        if kind == "call":
            name = call_name(term)
            if name in _SET_BUILTINS:
                return "set"
            if name == "minus":
                shapes = {self._shape(a, scope, depth + 1) for a in value[1:]}
                return "scalar" if shapes == {"scalar"} else None
            if name == "sort":
                return "array"
            if self.index.function(self.module, value[0]["value"]) is not None:
                return self.index.call_shape(self.module, value[0]["value"])
            return "json"
        return None


def _declared(rule: Term) -> set[str]:
    """Names a rule declares as locals: function arguments, `:=`, `some` and `every` variables."""
    names: set[str] = set()
    for arg in rule.get("head", {}).get("args", []):
        names |= _vars(arg)
    for expr in rule_exprs(rule):
        terms = expr["terms"]
        if isinstance(terms, list) and call_name(expr) == "assign":
            names |= _vars(terms[1])
        elif isinstance(terms, dict) and "symbols" in terms:
            for symbol in terms["symbols"]:
                args = symbol["value"][1:-1] if symbol.get("type") == "call" else [symbol]
                for arg in args:
                    names |= _vars(arg)
        elif isinstance(terms, dict) and "domain" in terms:
            names |= {terms[p]["value"] for p in ("key", "value") if terms.get(p)}
    return names


def _vars(term: Term) -> set[str]:
    kind, value = parts(term)
    if kind == "var":
        return {value}
    if kind in ("array", "set"):
        return set().union(*(_vars(t) for t in value))
    if kind == "object":
        return set().union(*(_vars(v) for _, v in value))
    return set()


def _positive(expr: Term) -> bool:
    return not expr.get("negated") and not expr.get("with")


def _operands(expr: Term) -> list[Term]:
    terms = expr["terms"]
    if isinstance(terms, dict) and "domain" in terms:
        return [terms["domain"]]
    return expr_terms(expr)


def _required_refs(term: Term) -> list[str]:
    """Keys of the references (and their prefixes) a term cannot be defined without."""
    kind, value = parts(term)
    found: list[str] = []
    if kind == "ref":
        found += [_key(value[:n]) for n in range(1, len(value) + 1)]
        for item in value[1:]:
            found += _required_refs(item)
    elif kind == "var":
        found.append(_key([term]))
    elif kind in ("array", "set", "call"):
        for item in value[1:] if kind == "call" else value:
            found += _required_refs(item)
    elif kind == "object":
        for pair in value:
            for item in pair:
                found += _required_refs(item)
    return found


def _key(ref: list[Term]) -> str:
    return json.dumps(ref, sort_keys=True)
