"""Embedded engine: p50/p99 per decision for each request kind on the full MAESTRO bundle.

Measures compile-once, evaluate-many through regopy's VM with the service's own hot path
(build and set the input, query the decision entrypoint, parse the JSON result): the work one engine
worker does per decision.
The last row is agent_action with the `state` the service passes under steady load: agent
counters and a full 20-entry session history (each entry is input rego-cpp must build).
MAESTRO_GATE_ENGINE_PATCHES=off measures rego-cpp without engine/_patches.cc.

`--layers` then shows where a decision's time goes, for policy authors: each layer's `deny`,
`hitl` and `obligations` set compiled as an entrypoint of its own and evaluated alone on that
last input, against an entrypoint that runs no rule (what every query costs before any rule).
Rules a set shares with the others (`lib.*`) are counted in every set that uses them.

`--costs` prints what single constructs cost per rule body on this engine (rule bodies that
fail at their last statement, timed as the slope between 10 and 160 of them in one set).

Then every engine side by side on the same inputs, each through its PolicyEngine `evaluate` as
the DecisionPoint calls it, one decision at a time: `embedded`, `opa-inprocess` (OPA's own Go
evaluator in this process) and `opa` (the OPA adapter over loopback HTTP to the OPA stand-in, run
in its own process: a Python server around OPA's engine, since no OPA binary can be installed
here), each with its ratio to `opa-inprocess`, OPA's own evaluation on the same input.
`--engines` picks which (default: all three); `--engines ""` skips the section.
Usage: python bench/engine_bench.py [--n 5000] [--bundle policies] [--layers] [--costs]
       [--engines embedded,opa-inprocess,opa]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bodies import BODIES
from maestro_gate.core.decision.ports import PolicyEngine
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.engine import patches
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, Bundle, read_bundle
from maestro_gate.engine.embedded import EmbeddedEngine, compile_bundle
from maestro_gate.engine.inprocess import InProcessOpaEngine
from maestro_gate.engine.native_eval import evaluate
from maestro_gate.engine.opa import OpaEngine
from maestro_gate.state.activity import entry

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("embedded", "opa-inprocess", "opa")

# A busy session as the memory state source holds it: 20 entries, as `state/activity.py` writes.
ENTRY = entry(REQUEST_ADAPTER.validate_python(BODIES["agent_action"]), "allow")
SERVICE_STATE = {
    "agent": {"requests_in_window": 5, "window_seconds": 60, "budget_spent": 0.0},
    "session": {"recent": [ENTRY] * 20},
}


def main() -> None:
    """Print p50/p99 per kind and the decision each input got."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--bundle", type=Path, default=Path("policies"))
    parser.add_argument("--layers", action="store_true", help="also time each layer's sets")
    parser.add_argument(
        "--costs", action="store_true", help="also time single Rego constructs, per rule body"
    )
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help="engines to compare side by side"
    )
    args = parser.parse_args()
    bundle = read_bundle(args.bundle)
    rego, program = compile_bundle(bundle)
    entrypoint = DECISION_ENTRYPOINT.encode()
    print(f"engine bench: bundle {bundle.revision} ({len(bundle.modules)} modules), n={args.n}")
    print(f"rego-cpp fixes (engine/_patches.cc): {patches.status()}")
    print(f"{'kind':<24} {'decision':<13} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8}")
    rows = [(kind, body, {}) for kind, body in BODIES.items()]
    rows.append(("agent_action + history", BODIES["agent_action"], SERVICE_STATE))
    for kind, body, state in rows:
        document = {**engine_document(body), "state": state}
        decision = evaluate(rego, program, entrypoint, document)["decision"]
        samples = sorted(timings(rego, program, entrypoint, document, args.n, warmup=200))
        p50 = samples[len(samples) // 2]
        p99 = samples[int(len(samples) * 0.99)]
        print(f"{kind:<24} {decision:<13} {p50:8.1f} {p99:8.1f} {statistics.fmean(samples):8.1f}")
    if args.layers:
        document = {**engine_document(BODIES["agent_action"]), "state": SERVICE_STATE}
        layer_costs(bundle, document, max(args.n // 5, 200))
    if args.costs:
        construct_costs(max(args.n // 5, 500))
    engines = [name for name in args.engines.split(",") if name]
    if engines:
        compare_engines(args.bundle, engines, rows, max(args.n // 5, 10))


def compare_engines(
    bundle_dir: Path,
    names: list[str],
    rows: list[tuple[str, dict[str, Any], dict[str, Any]]],
    n: int,
) -> None:
    """Print p50/p99 per kind for each engine, and each p50 as a ratio to opa-inprocess's."""
    print(f"\nengines side by side (PolicyEngine.evaluate, one at a time), n={n}")
    print(f"{'kind':<24} {'engine':<14} {'p50 µs':>8} {'p99 µs':>8} {'p50 / opa-inprocess':>20}")
    with _engines(bundle_dir, names) as engines:
        for kind, body, state in rows:
            document = {**engine_document(body), "state": state}
            figures = {name: asyncio.run(_evaluations(e, document, n)) for name, e in engines}
            reference = figures.get("opa-inprocess", (0.0, 0.0))[0]
            for name, (p50, p99) in figures.items():
                ratio = f"{p50 / reference:.2f}" if reference else "-"
                print(f"{kind:<24} {name:<14} {p50:8.1f} {p99:8.1f} {ratio:>20}")


@contextlib.contextmanager
def _engines(bundle_dir: Path, names: list[str]) -> Iterator[list[tuple[str, PolicyEngine]]]:
    bundle = read_bundle(bundle_dir)
    made: list[tuple[str, PolicyEngine]] = []
    standin: subprocess.Popen[str] | None = None
    try:
        for name in names:
            if name == "embedded":
                embedded = EmbeddedEngine(workers=1)
                embedded.load(bundle)
                made.append((name, embedded))
            elif name == "opa-inprocess":
                inprocess = InProcessOpaEngine(workers=1)
                inprocess.load(bundle)
                made.append((name, inprocess))
            elif name == "opa":
                standin = subprocess.Popen(
                    [sys.executable, "-m", "tests.opa_standin", str(bundle_dir.resolve())],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert standin.stdout is not None
                made.append((name, OpaEngine(standin.stdout.readline().strip())))
            else:
                raise SystemExit(f"unknown engine {name!r}: choose from {', '.join(ENGINES)}")
        yield made
    finally:
        for _, engine in made:
            if isinstance(engine, EmbeddedEngine | InProcessOpaEngine):
                engine.close()
        if standin is not None and standin.stdin is not None:
            standin.stdin.close()  # the stand-in serves until its stdin closes
            standin.wait(timeout=30)


async def _evaluations(
    engine: PolicyEngine, document: dict[str, Any], n: int
) -> tuple[float, float]:
    """(p50, p99) in µs of `engine.evaluate(document)`, n times after a warm-up."""
    if isinstance(engine, OpaEngine):
        await engine.open()
    try:
        for _ in range(max(n // 10, 5)):
            await engine.evaluate(document, 10.0)
        samples = []
        for _ in range(n):
            started = time.perf_counter_ns()
            await engine.evaluate(document, 10.0)
            samples.append((time.perf_counter_ns() - started) / 1000)
    finally:
        if isinstance(engine, OpaEngine):
            await engine.close()
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def engine_document(body: dict[str, Any]) -> dict[str, Any]:
    """A request body as the service hands it to the engine (without `state`)."""
    return REQUEST_ADAPTER.validate_python(body).model_dump(mode="json", exclude_none=True)


def timings(
    rego: Any, program: Any, entrypoint: bytes, document: dict[str, Any], n: int, warmup: int = 50
) -> list[float]:
    """µs per evaluation of `entrypoint` on `document`, n times after `warmup` untimed ones."""
    for _ in range(warmup):
        evaluate(rego, program, entrypoint, document)
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        evaluate(rego, program, entrypoint, document)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


SETS = ("deny", "hitl", "obligations")
BASELINE = "maestro/bench_baseline/result"


def layer_costs(bundle: Bundle, document: dict[str, Any], n: int) -> None:
    """p50 of each layer set evaluated alone, and of a query that runs no rule."""
    defined: dict[str, set[str]] = {}
    for source in bundle.modules.values():
        package = re.search(r"^package (maestro\.layers\.\S+)", source, re.MULTILINE)
        if package:
            names = re.findall(rf"^({'|'.join(SETS)})\b", source, re.MULTILINE)
            defined.setdefault(package.group(1), set()).update(names)
    entrypoints = [BASELINE, DECISION_ENTRYPOINT] + [
        f"{package.replace('.', '/')}/{name}"
        for package in sorted(defined)
        for name in SETS
        if name in defined[package]
    ]
    baseline_module = "package maestro.bench_baseline\n\nresult := true\n"
    modules = {**bundle.modules, "bench_baseline.rego": baseline_module}
    rego, program = compile_bundle(dataclasses.replace(bundle, modules=modules), entrypoints)
    print(f"\nper layer set (agent_action + history, p50 of {n}; net = minus the no-rule query)")
    print(f"{'entrypoint':<56} {'p50 µs':>8} {'net µs':>8}")
    baseline = None
    for name in entrypoints:
        p50 = statistics.median(timings(rego, program, name.encode(), document, n))
        baseline = p50 if baseline is None else baseline
        label = "(no rule: what any query costs)" if name == BASELINE else name
        print(f"{label:<56} {p50:8.1f} {p50 - baseline:8.1f}")


# One rule body per line, each failing at its last statement so that no set grows (rego-cpp's
# SetAdd re-keys the whole set, which would swamp the figure).
CONSTRUCTS = {
    "input.kind == x fails": 'input.kind == "none"',
    "memoised guard holds, then input.kind == x fails": 'is_action\n\tinput.kind == "none"',
    "guard holds, then input.subject.id == x fails": 'is_action\n\tinput.subject.id == "none"',
    "guard holds, then count(input.subject.id) > n fails": (
        "is_action\n\tcount(input.subject.id) > 100"
    ),
    "guard holds, then sprintf(...) == x fails": (
        'is_action\n\tsprintf("%s", [input.subject.id]) == "none"'
    ),
}
GUARD = 'default is_action := false\n\nis_action if input.kind == "agent_action"\n'


def construct_costs(n: int) -> None:
    """µs per rule body for a few constructs: the slope between 10 and 160 such bodies."""
    document = {"kind": "agent_action", "subject": {"id": "spiffe://corp.example/agent/a"}}
    print(f"\nµs per rule body (p50 of {n}; slope between 10 and 160 such bodies in one set)")
    for label, body in CONSTRUCTS.items():
        p50 = {}
        for count in (10, 160):
            rules = "".join(f"\ndeny contains {i} if {{\n\t{body}\n}}\n" for i in range(count))
            source = f"package bench\n\nimport rego.v1\n\n{GUARD}{rules}\nresult := 1\n"
            source += "\nresult := 2 if some _ in deny\n"
            bundle = Bundle(Path("."), "costs", [""], {"bench.rego": source}, {}, {}, "")
            rego, program = compile_bundle(bundle, ["bench/result"])
            p50[count] = statistics.median(timings(rego, program, b"bench/result", document, n))
        print(f"{label:<56} {(p50[160] - p50[10]) / 150:8.2f}")


if __name__ == "__main__":
    main()
