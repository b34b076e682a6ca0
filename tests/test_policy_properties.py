"""Properties of the bundle (issue 21 item 6), on the embedded engine and OPA's own engine.

- Caller monotonicity: removing a caller-declared `execution` or `side_effects`, or lowering a
  caller-supplied label that is no higher than what the gate knows from the registry, never
  turns a deny or require_hitl into allow. (A label above the registry's classification, or a
  declaration the gate has no source for, is the caller's to make stricter: lowering it may
  loosen, by design.)
- Registry monotonicity: removing an optional field (from every entry of a registry section
  that has it, one field name at a time, or a whole optional top-level section) never turns a
  deny or require_hitl into allow. Each removal is its own bundle, compiled once on both
  engines, and judged on its own share of the examples.
- Chain monotonicity: adding a hop to a delegation chain never turns a deny or require_hitl
  into allow.

Inputs are drawn over the example registry (tests/strategies.py), derandomized so that CI draws
the same ones; MAESTRO_GATE_PROPERTY_EXAMPLES sets how many (1,000 unless set). A failure prints
the shrunk counterexample, the property and the engine.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from maestro_gate.core.errors import EngineError
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine
from maestro_gate.engine.inprocess import InProcessOpaEngine
from tests.conftest import POLICIES
from tests.strategies import Pools, corpus_settings, documents

EXAMPLES = int(os.environ.get("MAESTRO_GATE_PROPERTY_EXAMPLES", "1000"))
REGISTRY = read_bundle(POLICIES).data["maestro"]["registry"]
POOLS = Pools.of(REGISTRY)
ORDER = REGISTRY["classification_order"]
Json = dict[str, Any]
Engine = EmbeddedEngine | InProcessOpaEngine


class Judge:
    """Both engines on policies/, asked from one event loop."""

    def __init__(self, runner: asyncio.Runner, engines: dict[str, Engine]) -> None:
        self.runner = runner
        self.engines = engines

    def decision(self, name: str, document: Json) -> str:
        """The engine's decision (an engine error counts as deny, as the gate answers)."""
        try:
            value = self.runner.run(self.engines[name].evaluate(document, 10)).value
        except EngineError:
            return "deny"
        return str(value["decision"])


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    """The embedded engine and opa-inprocess with policies/ loaded."""
    bundle = read_bundle(POLICIES)
    embedded, opa = EmbeddedEngine(workers=1), InProcessOpaEngine(workers=1)
    with asyncio.Runner() as runner:
        try:
            embedded.load(bundle)
            opa.load(bundle)
            yield Judge(runner, {"embedded": embedded, "opa-inprocess": opa})
        finally:
            opa.close()
            embedded.close()


def _rank(label: Any) -> int:
    return ORDER.index(label) if label in ORDER else len(ORDER)


def _known_label(document: Json) -> str | None:
    """The classification the registry gives what the request touches, if it gives one."""
    stores = REGISTRY.get("stores", {})
    if document["kind"] == "agent_action":
        target = document.get("target", {})
        return stores.get(target.get("id"), {}).get("classification")
    if document["kind"] == "data_movement":
        return stores.get(document["source"]["id"], {}).get("classification")
    return None


def caller_weakenings(document: Json, which: str) -> Iterator[tuple[str, Json]]:
    """Each way of kind `which` to take back a declaration: (what was changed, document)."""
    for field in ("execution", "side_effects"):
        if field == which and field in document:
            weaker = copy.deepcopy(document)
            del weaker[field]
            yield f"remove {field}", weaker
    path = {
        "agent_action": ("target", "classification"),
        "data_movement": ("data", "classification"),
    }
    if which == "label" and document["kind"] in path:
        outer, inner = path[document["kind"]]
        label = document.get(outer, {}).get(inner)
        known = _known_label(document)
        if label in ORDER and known in ORDER and _rank(label) <= _rank(known):
            for lower in ORDER[: ORDER.index(label)]:
                weaker = copy.deepcopy(document)
                weaker[outer][inner] = lower
                yield f"lower {outer}.{inner} {label} -> {lower} (registry: {known})", weaker


def chain_extensions(document: Json, hop: Json) -> Iterator[tuple[str, Json]]:
    """The document with `hop` added at the front and at the end of its delegation chain."""
    chain = document.get("context", {}).get("delegation_chain", [])
    for where, longer in (("first", [hop, *chain]), ("last", [*chain, hop])):
        extended = copy.deepcopy(document)
        extended.setdefault("context", {})["delegation_chain"] = longer
        yield f"add hop {where}", extended


def check(
    judge: Judge,
    document: Json,
    variants: Callable[[Json], Iterator[tuple[str, Json]]],
    prop: str,
) -> None:
    """Fail, naming property, engine, change and both inputs, when a variant is allowed."""
    for engine in judge.engines:
        before = judge.decision(engine, document)
        if before == "allow":
            continue
        for change, variant in variants(document):
            if judge.decision(engine, variant) == "allow":
                pytest.fail(
                    f"{prop} broken on {engine}: {change} turns {before} into allow\n"
                    f"input:   {json.dumps(document, sort_keys=True)}\n"
                    f"changed: {json.dumps(variant, sort_keys=True)}",
                    pytrace=False,
                )


SETTINGS = corpus_settings(EXAMPLES)

HOPS = st.fixed_dictionaries(
    {
        "delegator": st.sampled_from(POOLS.agents),
        "delegatee": st.sampled_from(POOLS.agents),
        "scopes": st.lists(st.sampled_from(POOLS.scopes), max_size=3),
        "ttl_seconds": st.integers(1, 200_000),
    }
)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "which",
    [
        "execution",
        "side_effects",
        "label",
    ],
)
def test_caller_monotonicity(judge: Judge, which: str) -> None:
    """Taking back a checkable caller declaration never turns deny/hitl into allow."""

    @SETTINGS
    @given(documents(POOLS))
    def prop(document: Json) -> None:
        check(judge, document, lambda d: caller_weakenings(d, which), "caller monotonicity")

    prop()


@pytest.mark.timeout(600)
def test_chain_monotonicity(judge: Judge) -> None:
    """Adding a hop to the delegation chain never turns deny/hitl into allow."""

    @SETTINGS
    @given(documents(POOLS), HOPS)
    def prop(document: Json, hop: Json) -> None:
        check(judge, document, lambda d: chain_extensions(d, hop), "chain monotonicity")

    prop()


SECTIONS = ("agents", "tools", "stores", "destinations", "servers", "chains")
OPTIONAL_TOP = (
    "thresholds",
    "autonomy_classes",
    "default_tenant",
    "destinations",
    "servers",
    "chains",
)


def removals() -> list[str]:
    """`section.field` (the field left out of every entry of the section) or `top` names."""
    found = {
        f"{section}.{name}"
        for section in SECTIONS
        for entry in REGISTRY.get(section, {}).values()
        for name in entry
    }
    found |= {f"thresholds.{name}" for name in REGISTRY.get("thresholds", {})}
    return sorted(found) + [top for top in OPTIONAL_TOP if top in REGISTRY]


def without(removal: str) -> Json:
    """The example registry with `removal` left out."""
    registry = copy.deepcopy(REGISTRY)
    section, _, name = removal.partition(".")
    if not name:
        del registry[section]
    elif section == "thresholds":
        del registry["thresholds"][name]
    else:
        for entry in registry[section].values():
            entry.pop(name, None)
    return registry


REMOVALS = removals()
PER_REMOVAL = -(-EXAMPLES // len(REMOVALS))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("index", range(len(REMOVALS)), ids=REMOVALS)
def test_registry_monotonicity(judge: Judge, index: int, tmp_path_factory: Any) -> None:
    """Leaving an optional registry field out never turns deny/hitl into allow."""
    removal = REMOVALS[index]
    path = tmp_path_factory.mktemp("registry") / "registry.json"
    path.write_text(json.dumps(without(removal)))
    bundle = read_bundle(POLICIES, path)
    embedded, opa = EmbeddedEngine(workers=1), InProcessOpaEngine(workers=1)
    embedded.load(bundle)
    opa.load(bundle)
    weaker = Judge(judge.runner, {"embedded": embedded, "opa-inprocess": opa})

    @seed(index)
    @settings(SETTINGS, max_examples=PER_REMOVAL, derandomize=False)
    @given(documents(POOLS))
    def prop(document: Json) -> None:
        for engine in judge.engines:
            before = judge.decision(engine, document)
            if before != "allow" and weaker.decision(engine, document) == "allow":
                pytest.fail(
                    f"registry monotonicity broken on {engine}: leaving out {removal} turns "
                    f"{before} into allow\ninput: {json.dumps(document, sort_keys=True)}",
                    pytrace=False,
                )

    try:
        prop()
    finally:
        opa.close()
        embedded.close()
