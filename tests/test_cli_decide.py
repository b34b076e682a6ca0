"""`maestro-gate decide FILE|-`: one decision, printed as JSON, its kind in the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bodies import BODIES  # noqa: E402

RUN_CLI = "from maestro_gate.cli import main; raise SystemExit(main())"


def decide(
    tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would, on the shipped bundle, in a fresh working directory."""
    env = os.environ | {
        "MAESTRO_GATE_BUNDLE_DIR": str(ROOT / "policies"),
        "MAESTRO_GATE_CATALOG_DIR": str(ROOT / "catalog"),
        "MAESTRO_GATE_AUDIT_DSN": f"sqlite:///{tmp_path / 'audit.db'}",
        "MAESTRO_GATE_CHECKPOINT_KEY_FILE": str(tmp_path / "checkpoint.key"),
        "MAESTRO_GATE_DEV_KEY_FILE": str(tmp_path / "dev-api-key"),
    }
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, "decide", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def write(tmp_path: Path, body: Any) -> str:
    """A request file."""
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_an_allowed_request_prints_only_the_decision_and_exits_0(tmp_path: Path) -> None:
    """stdout is one JSON document (logs go to stderr), audited at index 0."""
    done = decide(tmp_path, write(tmp_path, BODIES["agent_action"]))
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["decision"] == "allow"
    assert response["audit"]["index"] == 0
    assert set(response["layers"].values()) == {"allow"}


@pytest.mark.parametrize("stdin", [True, False])
def test_an_unregistered_agent_is_denied_with_exit_2(tmp_path: Path, stdin: bool) -> None:
    """From a file or from `-` (stdin), the same deny and exit code 2."""
    body = BODIES["agent_action"] | {"subject": {"id": "spiffe://corp.example/agent/nobody"}}
    if stdin:
        done = decide(tmp_path, "-", stdin=json.dumps(body))
    else:
        done = decide(tmp_path, write(tmp_path, body))
    assert done.returncode == 2, done.stderr
    response = json.loads(done.stdout)
    assert response["decision"] == "deny"
    assert "L7.unregistered_agent" in {r["rule"] for r in response["reasons"]}


def test_a_malformed_request_exits_1_with_an_error_on_stderr(tmp_path: Path) -> None:
    """Nothing is decided or printed on stdout."""
    done = decide(tmp_path, "-", stdin='{"kind": "agent_action"')
    assert done.returncode == 1
    assert done.stdout == ""
    assert json.loads(done.stderr.strip().splitlines()[-1])["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"kind": "agent_action", "kind": "delegation"}', "duplicate_key"),
        ('{"kind": "agent_action", "reflection_depth": 1e400}', "invalid_parameter"),
        (
            '{"kind": "agent_action", "subject": {"id": "a"}, "action": "x", "reversible": "no"}',
            "invalid_request",
        ),
    ],
)
def test_the_request_is_parsed_as_strictly_as_over_http(
    tmp_path: Path, body: str, code: str
) -> None:
    """Duplicate keys, overflowing numbers and coerced types are refused, as /v1/decide does."""
    done = decide(tmp_path, write_raw(tmp_path, body))
    assert done.returncode == 1
    assert done.stdout == ""
    assert json.loads(done.stderr.strip().splitlines()[-1])["code"] == code


def write_raw(tmp_path: Path, text: str) -> str:
    """A request file holding `text` exactly."""
    path = tmp_path / "request.json"
    path.write_text(text)
    return str(path)
