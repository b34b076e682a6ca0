"""The rules of a bundle by their `data` path, for the static checks of `policy check`.

`RuleIndex` answers two questions about a reference to `data` (by its full path, through an
import alias, or by a rule name of the module's own package): can it be undefined, and can
it be a set. `input` and base data (`data.json`, the registry a deployer swaps in) are JSON:
never sets, and any path into them can be undefined. Rule values are judged by the checker
that owns the index (`value_defined`, `value_shape`), which knows a body's bindings.
"""

from __future__ import annotations

from collections.abc import Callable

from maestro_gate.authoring.rego_ast import Module, Term

Path = tuple[str, ...]
_NOT_SETS = {"json", "array", "object", "scalar"}


class RuleIndex:
    """Every rule definition of the parsed modules, keyed by its static `data` path."""

    def __init__(self, modules: list[Module]) -> None:
        self.rules: dict[Path, list[tuple[Module, Term]]] = {}
        self.prefixes: set[Path] = set()
        self.names: dict[Path, set[str]] = {}
        for module in modules:
            self.names.setdefault(module.package, set())
            self.prefixes |= {module.package[:n] for n in range(len(module.package) + 1)}
            for rule in module.rules:
                ref = rule["head"]["ref"]
                self.names[module.package].add(str(ref[0]["value"]))
                path = (*module.package, str(ref[0]["value"]), *_static(ref)[0])
                self.rules.setdefault(path, []).append((module, rule))
                self.prefixes |= {path[:n] for n in range(len(path))}
        self.value_defined: Callable[[Module, Term, Term], bool] = lambda m, r, t: False
        self.value_shape: Callable[[Module, Term, Term], str | None] = lambda m, r, t: None
        self._defined: dict[Path, bool] = {}
        self._shapes: dict[Path, str | None] = {}

    def is_global(self, module: Module, name: str) -> bool:
        """Whether a bare name refers to a document (input, data, an import, a rule)."""
        return (
            name in ("input", "data")
            or name in module.aliases
            or name in self.names.get(module.package, set())
        )

    def defined(self, module: Module, ref: list[Term]) -> bool:
        """Whether a reference whose head is a document is always defined."""
        root, path, rest = self._resolve(module, ref)
        if root == "input":
            return len(ref) == 1
        rule = self._rule_at(path)
        if rule is not None:
            return rule == path and rest == 0 and self._rule_defined(rule)
        return rest == 0 and (path in self.prefixes or not path)

    def shape(self, module: Module, ref: list[Term]) -> str | None:
        """The shape (see `divergence`) of a reference whose head is a document."""
        root, path, rest = self._resolve(module, ref)
        if root == "input":
            return "json"
        rule = self._rule_at(path)
        if rule is None:
            return "object" if rest == 0 and path in self.prefixes else "json"
        shape = self._rule_shape(rule)
        if rule == path and rest == 0:
            return shape
        return "json" if shape == "json" else None

    def function(self, module: Module, operator: list[Term]) -> Path | None:
        """The path of the bundle function a call operator names, or None for a built-in."""
        if operator[0].get("type") != "var" or not self.is_global(module, operator[0]["value"]):
            return None
        root, path, rest = self._resolve(module, operator)
        defs = self.rules.get(path) if root == "data" and rest == 0 else None
        return path if defs and "args" in defs[0][1]["head"] else None

    def call_defined(self, module: Module, operator: list[Term]) -> bool:
        """Whether a call is defined whenever its arguments are (built-ins: yes)."""
        path = self.function(module, operator)
        return path is None or self._rule_defined(path)

    def call_shape(self, module: Module, operator: list[Term]) -> str | None:
        """The shape of a bundle function's result."""
        path = self.function(module, operator)
        return self._rule_shape(path) if path is not None else None

    def _resolve(self, module: Module, ref: list[Term]) -> tuple[str, Path, int]:
        head = str(ref[0]["value"])
        if head == "input":
            return "input", (), len(ref) - 1
        base = () if head == "data" else module.aliases.get(head, (*module.package, head))
        keys, rest = _static(ref)
        return "data", base + keys, rest

    def _rule_at(self, path: Path) -> Path | None:
        for n in range(len(path), 0, -1):
            if path[:n] in self.rules:
                return path[:n]
        return None

    def _rule_defined(self, path: Path) -> bool:
        if path not in self._defined:
            self._defined[path] = False  # a cycle is not proof of definedness
            self._defined[path] = any(self._always(m, r) for m, r in self.rules[path])
        return self._defined[path]

    def _always(self, module: Module, rule: Term) -> bool:
        head = rule["head"]
        if rule.get("default") or ("key" in head and "value" not in head):
            return True
        if _static(head["ref"])[1]:  # p[k] := v: an object, {} when no body holds
            return True
        args_plain = all(a.get("type") == "var" for a in head.get("args", []))
        return (
            _unconditional(rule) and args_plain and self.value_defined(module, rule, head["value"])
        )

    def _rule_shape(self, path: Path) -> str | None:
        if path not in self._shapes:
            self._shapes[path] = None
            shapes: set[str | None] = set()
            for module, rule in self.rules[path]:
                shapes |= self._def_shapes(module, rule)
            self._shapes[path] = _join(shapes)
        return self._shapes[path]

    def _def_shapes(self, module: Module, rule: Term) -> set[str | None]:
        head = rule["head"]
        if "key" in head and "value" not in head:
            return {"set"}
        if _static(head["ref"])[1]:
            return {"object"}
        shapes: set[str | None] = set()
        while rule:
            shapes.add(self.value_shape(module, rule, rule["head"]["value"]))
            rule = rule.get("else") or {}
        return shapes


def _static(ref: list[Term]) -> tuple[Path, int]:
    """The leading string keys of a reference after its head, and how many keys follow them."""
    keys: list[str] = []
    for term in ref[1:]:
        if term.get("type") != "string":
            break
        keys.append(str(term["value"]))
    return tuple(keys), len(ref) - 1 - len(keys)


def _unconditional(rule: Term) -> bool:
    body = rule.get("body", [])
    return all(
        not e.get("negated") and e["terms"] == {"type": "boolean", "value": True} for e in body
    )


def _join(shapes: set[str | None]) -> str | None:
    if len(shapes) == 1:
        return next(iter(shapes))
    return "json" if shapes and shapes <= _NOT_SETS else None
