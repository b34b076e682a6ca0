"""The README stays true: every setting, metric, route and CLI command it must name is named."""

from __future__ import annotations

import json
import re
from pathlib import Path

from maestro_gate.config import PREFIX, Settings
from tests.test_metrics_contract import FAMILIES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_lists_every_environment_variable() -> None:
    """Each Settings field appears as its MAESTRO_GATE_ variable."""
    missing = [
        f"{PREFIX}{n.upper()}"
        for n in Settings.model_fields
        if f"`{PREFIX}{n.upper()}`" not in README
    ]
    assert missing == []


def test_readme_lists_every_metric() -> None:
    """Each metric family the service exports is in the metrics table."""
    missing = [name for name, kind in FAMILIES if name not in README]
    assert missing == []


def test_readme_lists_every_route() -> None:
    """Each path of the OpenAPI snapshot is in the HTTP API table."""
    paths = json.loads((ROOT / "tests" / "snapshots" / "openapi.json").read_text())["paths"]
    shown = {re.sub(r"\{[^}]+\}", "{}", p) for p in re.findall(r"`(?:[A-Z/]+ )?(/[^`? ]*)", README)}
    missing = [p for p in paths if re.sub(r"\{[^}]+\}", "{}", p) not in shown]
    assert missing == []


def test_readme_shows_the_two_commands() -> None:
    """`make run` and `make test` are the documented set-up."""
    assert "make run" in README
    assert "make test" in README
