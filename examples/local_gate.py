"""A gate for the examples: MAESTRO_GATE_URL and MAESTRO_GATE_API_KEY if set, else one served
here on a loopback port with a two-rule bundle (shell.exec is denied, everything else allowed),
a SQLite audit log and an API key in a temporary directory. Nothing leaves the machine."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from maestro_gate.api.app import create_app
from maestro_gate.auth.keys import add_key
from maestro_gate.config import Settings
from maestro_gate.core.decision.callers import ROLES

LAYERS = [
    "l1_foundation_models", "l2_data_operations", "l3_agent_frameworks",
    "l4_deployment_infrastructure", "l5_evaluation_observability", "l6_security_compliance",
    "l7_agent_ecosystem", "cross_layer",
]
POLICY = """package maestro.decision

import rego.v1

layers := {l: "allow" | some l in %s}

deny contains {"rule": "L3.tool_not_allowlisted", "layer": "l3_agent_frameworks",
  "threats": ["T2"], "message": sprintf("tool %%s is not allowlisted", [input.action])} if {
  input.action in {"shell.exec", "shell_exec"}
}

result := {"decision": "deny", "reasons": [r | some r in deny], "obligations": [],
  "layers": object.union(layers, {"l3_agent_frameworks": "deny"}), "approvers_required": 0} if {
  count(deny) > 0
}

result := {"decision": "allow", "reasons": [], "obligations": [], "layers": layers,
  "approvers_required": 0} if count(deny) == 0
""" % json.dumps(LAYERS)


@contextmanager
def gate() -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a gate to ask."""
    if os.environ.get("MAESTRO_GATE_URL"):
        yield os.environ["MAESTRO_GATE_URL"], os.environ.get("MAESTRO_GATE_API_KEY", "")
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        bundle = root / "bundle" / "maestro" / "decision"
        bundle.mkdir(parents=True)
        (bundle / "decision.rego").write_text(POLICY)
        (root / "bundle" / ".manifest").write_text('{"revision": "example", "roots": ["maestro"]}')
        key = add_key(root / "keys.json", "example", ROLES)
        settings = Settings.model_validate(
            {
                "bundle_dir": root / "bundle",
                "audit_dsn": f"sqlite:///{root / 'audit.db'}",
                "checkpoint_key_file": root / "checkpoint.key",
                "api_keys_file": root / "keys.json",
                "catalog_dir": None,
                "log_level": "error",
            }
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}", key
        finally:
            server.should_exit = True
            thread.join()
