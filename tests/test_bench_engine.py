"""bench/engine_bench.py runs on the shipped bundle and prints every row it promises.

The figures themselves are not asserted (speed is read off the bench, not tested); what is
checked is that each section prints a row per input, layer set and construct, with numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"-?\d+\.\d+"


def test_engine_bench_prints_every_section() -> None:
    run = subprocess.run(
        [sys.executable, "bench/engine_bench.py", "--n", "10", "--layers", "--costs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for kind in ("agent_action", "data_movement", "delegation", "agent_action + history"):
        assert re.search(rf"^{re.escape(kind)}\s+allow\s+{NUMBER}\s+{NUMBER}", out, re.M), kind
    layer_rows = re.findall(rf"^maestro/layers/\S+/(deny|hitl|obligations)\s+{NUMBER}", out, re.M)
    assert len(layer_rows) == 24  # eight layer packages, three sets each
    section = out.split("µs per rule body", 1)[1].split("engines side by side")[0].splitlines()[1:]
    costs = [float(line.split()[-1]) for line in section if line.strip()]
    assert len(costs) == 5
    assert all(cost > 0 for cost in costs)
    side_by_side = out.split("engines side by side", 1)[1]
    for kind in ("agent_action", "data_movement", "delegation", "agent_action + history"):
        for engine in ("embedded", "opa-inprocess", "opa"):
            row = rf"^{re.escape(kind)}\s+{re.escape(engine)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$"
            assert re.search(row, side_by_side, re.M), (kind, engine)
    assert re.search(rf"^agent_action\s+opa-inprocess\s+{NUMBER}\s+{NUMBER}\s+1\.00$", out, re.M)
