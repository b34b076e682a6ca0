"""The seeds' incidents, end to end: each scenario fixture through `POST /v1/decide`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import POLICIES, live_client, make_settings

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.json"))


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The service on the real bundle, with a tester credential that may ask for any agent."""
    tmp_path = tmp_path_factory.mktemp("scenarios")
    with live_client(make_settings(tmp_path, POLICIES)) as client:
        assert client.get("/ready").status_code == 200, client.get("/v1/status").text
        yield client


def test_there_are_scenarios_for_every_decision() -> None:
    """The fixtures cover allow, deny and require_hitl."""
    decisions = {json.loads(path.read_text())["expect"]["decision"] for path in SCENARIOS}
    assert decisions == {"allow", "deny", "require_hitl"}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_gets_its_decision_over_http(gate: TestClient, path: Path) -> None:
    """The request gets the expected decision, citing every expected rule, and is audited.

    The session's earlier requests (`history`) go first, and each is allowed.
    """
    scenario: dict[str, Any] = json.loads(path.read_text())
    for body in scenario.get("history", []):
        earlier = gate.post("/v1/decide", json=body)
        assert earlier.status_code == 200, earlier.text
        assert earlier.json()["decision"] == "allow", earlier.json()["reasons"]
    response = gate.post("/v1/decide", json=scenario["request"])
    assert response.status_code == 200, response.text
    body = response.json()
    expected = scenario["expect"]
    assert body["decision"] == expected["decision"], body["reasons"]
    assert set(expected["rules"]) <= {r["rule"] for r in body["reasons"]}
    assert all(not r["rule"].startswith("GATE.") for r in body["reasons"])
    line = gate.get(f"/v1/audit/entries/{body['decision_id']}").json()
    assert json.loads(line["record"])["decision"] == expected["decision"]
