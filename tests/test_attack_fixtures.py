"""A compromised agent's requests beside their benign neighbours (issue 21 item 7).

Each `tests/attacks/<name>.json` holds an attack that must be refused and the nearest request
that must stay allowed. Both run on the shipped bundle through both engines (with the gate
state each case names) and through `POST /v1/decide` on a fresh service, where the fixture's
`history` requests are decided first so the state is the service's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from tests.conftest import POLICIES, live_client, make_settings
from tests.test_engine_semantics import Engines, bundle, engines  # noqa: F401 (fixtures)

FIXTURES = sorted((Path(__file__).parent / "attacks").glob("*.json"))
CASES = ("attack", "benign")


def load(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(path.read_text())
    return fixture


def check(result: dict[str, Any], expect: dict[str, Any], where: str) -> None:
    """The decision is the expected one, citing every expected rule; an allow cites none."""
    fired = {reason["rule"] for reason in result["reasons"]}
    assert result["decision"] == expect["decision"], f"{where}: {result['reasons']}"
    assert set(expect["rules"]) <= fired, f"{where}: missing {set(expect['rules']) - fired}"
    if expect["decision"] == "allow":
        assert fired == set(), where


def test_every_fixture_pairs_an_attack_with_an_allowed_neighbour() -> None:
    """Each fixture refuses its attack and allows its benign case."""
    assert len(FIXTURES) >= 6
    for path in FIXTURES:
        fixture = load(path)
        assert set(fixture) <= {"class", "description", "history", *CASES}, path.name
        assert fixture["attack"]["expect"]["decision"] in {"deny", "require_hitl"}, path.name
        assert fixture["benign"]["expect"]["decision"] == "allow", path.name
        stateful = any("state" in fixture[case] for case in CASES)
        assert ("history" in fixture) == stateful, path.name


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_on_both_engines(engines: Engines, path: Path, case: str) -> None:  # noqa: F811
    """The embedded engine and OPA's own both give the expected decision."""
    fixture = load(path)
    request = REQUEST_ADAPTER.validate_python(fixture[case]["request"])
    document = request.model_dump(mode="json", exclude_none=True)
    document["state"] = fixture[case].get("state", {})
    embedded, opa = engines.values(document)
    check(embedded, fixture[case]["expect"], f"embedded {case}")
    check(opa, fixture[case]["expect"], f"opa {case}")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_over_http(tmp_path: Path, path: Path) -> None:
    """Through the service: the history first, then the attack, then its benign neighbour."""
    fixture = load(path)
    with live_client(make_settings(tmp_path, POLICIES)) as client:
        for earlier in fixture.get("history", []):
            response = client.post("/v1/decide", json=earlier)
            assert response.status_code == 200, response.text
            assert response.json()["decision"] == "allow", response.json()["reasons"]
        for case in CASES:
            response = client.post("/v1/decide", json=fixture[case]["request"])
            assert response.status_code == 200, response.text
            check(response.json(), fixture[case]["expect"], f"http {case}")
