"""The decision contract, checked at start and at reload on the engine that will run the bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.core.decision.decisions import LAYERS
from maestro_gate.core.decision.requests import REQUEST_ADAPTER
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.bundle_contract import check_contract, contract_problems
from maestro_gate.engine.probes import PROBE_REQUESTS, probe_documents
from tests.conftest import EVERY_LAYER_ALLOWS, POLICIES, action, write_bundle
from tests.conftest import make_settings as conftest_settings

RELOAD = "/v1/admin/bundle/reload"
DECISION = "maestro/decision/decision.rego"
ENGINES = ["embedded", "opa-inprocess"]

NO_LAYERS = """package maestro.decision

import rego.v1

result := {"decision": "allow"}
"""

DIVIDES_BY_ZERO = f"""package maestro.decision

import rego.v1

{EVERY_LAYER_ALLOWS}
divisor := count(input.action) - count(input.action)

result := {{"decision": "allow", "reasons": [], "obligations": [], "layers": every_layer_allows,
  "ratio": 1 / divisor}}
"""

ALLOWS_OVER_A_DENY = f"""package maestro.decision

import rego.v1

{EVERY_LAYER_ALLOWS}
result := {{"decision": "allow", "reasons": [], "obligations": [],
  "layers": object.union(every_layer_allows, {{"l6_security_compliance": "deny"}})}}
"""


def settings_for(tmp_path: Path, bundle: Path, engine: str, **overrides: Any) -> Any:
    """Settings for `bundle` on `engine`, caller authentication off (not under test here)."""
    return conftest_settings(tmp_path, bundle, auth="off", engine=engine, **overrides)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_shipped_policies_keep_the_contract(engine: str) -> None:
    """The project's own bundle passes on both local engines."""
    check_contract(read_bundle(POLICIES), engine)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("rego", "expected"),
    [
        (NO_LAYERS, "no verdict for the layer(s) l1_foundation_models"),
        (DIVIDES_BY_ZERO, "evaluation failed"),
        (ALLOWS_OVER_A_DENY, "allows while l6_security_compliance does not"),
    ],
    ids=["no-layers", "divides-by-zero", "allows-over-a-deny"],
)
def test_a_reload_breaking_the_contract_is_refused_and_the_active_bundle_stays(
    tmp_path: Path, engine: str, rego: str, expected: str
) -> None:
    """422 bundle_error naming the probe and the problem; decisions keep the active revision."""
    bundle = write_bundle(tmp_path / "bundle", revision="good")
    with TestClient(create_app(settings_for(tmp_path, bundle, engine))) as client:
        write_bundle(bundle, {DECISION: rego}, revision="broken")
        response = client.post(RELOAD)
        assert response.status_code == 422, response.text
        answer = response.json()
        assert answer["code"] == "bundle_error"
        assert "breaks the decision contract" in answer["message"]
        assert expected in json.dumps(answer)
        assert {e["code"] for e in answer["errors"]} == {"contract_violation"}
        assert "agent_action (unregistered agent)" in {
            e["location"]["probe"] for e in answer["errors"]
        }
        status = client.get("/v1/status").json()
        assert status["bundle"]["revision"] == "good"
        assert expected in status["last_reload_error"]
        decided = client.post("/v1/decide", json=action("shell.exec")).json()
        assert (decided["decision"], decided["policy"]["revision"]) == ("deny", "good")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bundle_breaking_the_contract_is_refused_at_start(tmp_path: Path, engine: str) -> None:
    """At start the bundle never activates: not ready, every decision a deny, status says why."""
    bundle = write_bundle(tmp_path / "bundle", {DECISION: NO_LAYERS})
    with TestClient(create_app(settings_for(tmp_path, bundle, engine))) as client:
        assert client.get("/ready").status_code == 503
        status = client.get("/v1/status").json()
        assert status["bundle"] is None
        assert "no verdict for the layer(s)" in status["last_reload_error"]
        decided = client.post("/v1/decide", json=action()).json()
        assert (decided["decision"], decided["reasons"][0]["rule"]) == (
            "deny",
            "GATE.no_active_bundle",
        )


def test_the_probes_are_valid_requests_and_use_the_bundles_own_registry() -> None:
    """Every probe is a valid /v1/decide body; a registry adds its first agent's requests."""
    for body in PROBE_REQUESTS.values():
        REQUEST_ADAPTER.validate_python(body)
    assert len(probe_documents({})) == 3
    documents = probe_documents(read_bundle(POLICIES).data)
    registered = [d for name, d in documents.items() if "registered agent spiffe://" in name]
    assert len(registered) == 3
    agent = registered[0]["subject"]["id"]
    assert {d["subject"]["id"] for d in registered} == {agent}
    assert (
        registered[0]["action"]
        in read_bundle(POLICIES).data["maestro"]["registry"]["agents"][agent]["tools"]
    )
    assert all("state" in d for d in documents.values())


def test_contract_problems_name_each_fault() -> None:
    """Wrong shape, a missing or unknown layer, and an allow over an objecting layer."""
    every = dict.fromkeys(LAYERS, "allow")
    assert contract_problems({"decision": "allow", "layers": every}) == []
    assert "wrong shape" in contract_problems({"decision": "maybe"})[0]
    missing = contract_problems({"decision": "deny", "reasons": [], "layers": {}})
    assert any("denied without a reason" in p for p in missing)
    assert any("no verdict for the layer(s)" in p for p in missing)
    unknown = contract_problems({"decision": "allow", "layers": {**every, "l9_nowhere": "allow"}})
    assert unknown == ["verdicts for unknown layer(s) l9_nowhere"]
