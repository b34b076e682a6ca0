"""Embedded engine: p50/p99 per decision for each request kind on the full MAESTRO bundle.

Measures compile-once, evaluate-many through regopy's VM with the service's own hot path
(build and set the input, query the decision entrypoint, parse the JSON result): the work one engine
worker does per decision.
The last row is agent_action with the `state` the service passes under steady load: agent
counters and a full 20-entry session history (each entry is input rego-cpp must build).
MAESTRO_GATE_ENGINE_PATCHES=off measures rego-cpp without engine/_patches.cc.
Usage: python bench/engine_bench.py [--n 5000] [--bundle policies]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bodies import BODIES
from maestro_gate.core.requests import REQUEST_ADAPTER
from maestro_gate.engine import patches
from maestro_gate.engine.bundle import DECISION_ENTRYPOINT, read_bundle
from maestro_gate.engine.embedded import compile_bundle
from maestro_gate.engine.vm import evaluate
from maestro_gate.state.activity import entry

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
        document = REQUEST_ADAPTER.validate_python(body).model_dump(mode="json", exclude_none=True)
        document["state"] = state
        samples = []
        decision = "?"
        for i in range(args.n + 200):
            started = time.perf_counter_ns()
            value = evaluate(rego, program, entrypoint, document)
            elapsed = time.perf_counter_ns() - started
            if i >= 200:
                samples.append(elapsed / 1000)
            decision = value["decision"]
        samples.sort()
        p50 = samples[len(samples) // 2]
        p99 = samples[int(len(samples) * 0.99)]
        print(f"{kind:<24} {decision:<13} {p50:8.1f} {p99:8.1f} {statistics.fmean(samples):8.1f}")
    print("target: p50 <= 100 µs per decision")


if __name__ == "__main__":
    main()
