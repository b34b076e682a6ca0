"""Shared fixtures: small real bundles on disk, Settings pointing at tmp_path, a live TestClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.config import Settings
from tests.credentials import EVERYTHING, key_header, write_keys_file

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# A rule for test bundles: the decision contract (engine/bundle_contract.py) refuses a bundle whose
# result does not give every layer a verdict on its probe requests.
EVERY_LAYER_ALLOWS = """every_layer_allows := {"l1_foundation_models": "allow",
  "l2_data_operations": "allow", "l3_agent_frameworks": "allow",
  "l4_deployment_infrastructure": "allow", "l5_evaluation_observability": "allow",
  "l6_security_compliance": "allow", "l7_agent_ecosystem": "allow", "cross_layer": "allow"}
"""
# True for the decision contract's probe requests (engine/probes.py), so a test bundle can keep
# the contract there and misbehave on the request under test.
CONTRACT_PROBE = """contract_probe if input.context.trace_id == "contract-probe"
"""

DECISION_REGO = (
    """package maestro.decision

import rego.v1

deny contains r if {
  input.action == "shell.exec"
  r := {"rule": "L3.tool_not_allowlisted", "layer": "l3_agent_frameworks",
        "threats": ["T2"], "message": sprintf("tool %s is not allowlisted", [input.action])}
}

hitl contains r if {
  input.reversible == false
  r := {"rule": "L6.irreversible_action", "layer": "l6_security_compliance",
        "threats": ["T7"], "message": "irreversible action needs two approvers", "approvers": 2}
}

# The decision contract: every result gives each of the eight layers a verdict.
"""
    + EVERY_LAYER_ALLOWS
    + """
default result := {"decision": "deny", "reasons": [{"rule": "CL.unknown_request_kind",
  "layer": "cross_layer", "threats": ["T24"], "message": "unknown kind"}],
  "obligations": [], "layers": {}, "approvers_required": 0}

result := {"decision": "deny", "reasons": [r | some r in deny], "obligations": [],
  "layers": object.union(every_layer_allows, {"l3_agent_frameworks": "deny"}),
  "approvers_required": 0} if count(deny) > 0

result := {"decision": "require_hitl", "reasons": [r | some r in hitl], "obligations": [],
  "layers": object.union(every_layer_allows, {"l6_security_compliance": "require_hitl"}),
  "approvers_required": 2} if {
  count(deny) == 0
  count(hitl) > 0
}

result := {"decision": "allow", "reasons": [], "obligations": [], "layers": every_layer_allows,
  "approvers_required": 0} if {
  count(deny) == 0
  count(hitl) == 0
  input.kind in {"agent_action", "data_movement", "delegation"}
}
"""
)


def write_bundle(
    root: Path,
    modules: dict[str, str] | None = None,
    *,
    revision: str = "test-1",
    data: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle directory: `.manifest`, the given modules, optional root data.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".manifest").write_text(json.dumps({"revision": revision, "roots": ["maestro"]}))
    for rel, source in (modules or {"maestro/decision/decision.rego": DECISION_REGO}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    if data is not None:
        (root / "data.json").write_text(json.dumps(data))
    return root


def make_settings(tmp_path: Path, bundle: Path, **overrides: Any) -> Settings:
    """Settings on tmp_path: the given bundle, a fresh SQLite audit file, a tester API key.

    The key (every role, any subject) is written beside the keys file as `tester.key`;
    `live_client` sends it.
    """
    keys_file = tmp_path / "keys.json"
    if not keys_file.exists():
        keys = write_keys_file(keys_file, {"tester": EVERYTHING})
        (tmp_path / "tester.key").write_text(keys["tester"])
    values: dict[str, Any] = {
        "bundle_dir": bundle,
        "audit_dsn": f"sqlite:///{tmp_path / 'audit.db'}",
        "checkpoint_key_file": tmp_path / "checkpoint.key",
        "audit_synchronous": "NORMAL",
        "api_keys_file": keys_file,
        "dev_key_file": tmp_path / "dev-api-key",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def tester_headers(settings: Settings) -> dict[str, str]:
    """The tester's credential header for settings made by `make_settings`."""
    assert settings.api_keys_file is not None
    return key_header((settings.api_keys_file.parent / "tester.key").read_text())


def live_client(settings: Settings) -> TestClient:
    """A TestClient for `settings` that sends the tester credential; use it as a context manager."""
    return TestClient(create_app(settings), headers=tester_headers(settings))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The small test bundle: denies shell.exec, escalates irreversible actions."""
    return write_bundle(tmp_path / "bundle")


@pytest.fixture
def settings(tmp_path: Path, bundle: Path) -> Settings:
    """Settings for the small test bundle on tmp_path."""
    return make_settings(tmp_path, bundle)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient with the lifespan running (engine loaded, audit writer started)."""
    with live_client(settings) as test_client:
        yield test_client


def action(tool: str = "web.search", **extra: Any) -> dict[str, Any]:
    """An agent_action request body."""
    body: dict[str, Any] = {
        "kind": "agent_action",
        "subject": {"id": "spiffe://corp.example/agent/analyst"},
        "action": tool,
        "context": {"trace_id": "trace-1"},
    }
    body.update(extra)
    return body
