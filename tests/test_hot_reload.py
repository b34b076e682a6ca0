"""Hot reload over real HTTP: the admin endpoint, the watcher, and decisions during swaps."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.authoring.build import sign_directory
from maestro_gate.config import Settings
from tests.conftest import DECISION_REGO, action, write_bundle
from tests.conftest import make_settings as conftest_settings

RELOAD = "/v1/admin/bundle/reload"
DECISION = "maestro/decision/decision.rego"
LAYER = "maestro/layers/l3_agent_frameworks/policy.rego"
LAYER_REGO = """package maestro.layers.l3_agent_frameworks

import rego.v1

# METADATA
# title: Shell is never allowed
# custom:
#   rule: L3.shell_forbidden
#   layer: l3_agent_frameworks
#   threats: [T2]
deny contains {"rule": "L3.shell_forbidden", "layer": "l3_agent_frameworks", "threats": ["T2"],
  "message": "no shell"} if input.action == "shell.exec"
"""


def make_settings(tmp_path: Path, bundle: Path, **overrides: Any) -> Settings:
    """Settings for `bundle` on tmp_path, caller authentication off (not under test here)."""
    return conftest_settings(tmp_path, bundle, auth="off", **overrides)


def set_revision(bundle: Path, revision: str) -> None:
    """Rewrite the bundle's manifest with a new revision."""
    (bundle / ".manifest").write_text(json.dumps({"revision": revision, "roots": ["maestro"]}))


def status(client: TestClient | httpx.Client) -> dict[str, Any]:
    """The `/v1/status` body."""
    body: dict[str, Any] = client.get("/v1/status").json()
    return body


def failures(client: TestClient) -> float:
    """The value of `maestro_bundle_activation_failures_total`."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("maestro_bundle_activation_failures_total "):
            return float(line.split()[1])
    raise AssertionError("bundle failure counter missing")


def wait_for(condition: Callable[[], bool], polls: int = 1000) -> bool:
    """Poll `condition` up to `polls` times, 10 ms apart; True once it holds."""
    for _ in range(polls):
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The small decision bundle plus one annotated L3 layer module, revision r1."""
    return write_bundle(
        tmp_path / "bundle", {DECISION: DECISION_REGO, LAYER: LAYER_REGO}, revision="r1"
    )


@pytest.fixture
def client(tmp_path: Path, bundle: Path) -> Iterator[TestClient]:
    """A running app on the bundle, no watcher."""
    with TestClient(create_app(make_settings(tmp_path, bundle))) as test_client:
        yield test_client


def test_good_reload_swaps_the_revision(client: TestClient, bundle: Path) -> None:
    """A valid changed bundle is activated; decisions and status name the new revision."""
    set_revision(bundle, "r2")
    response = client.post(RELOAD)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["changed"]) == ("activated", True)
    assert (body["previous"]["revision"], body["bundle"]["revision"]) == ("r1", "r2")
    assert status(client)["bundle"]["revision"] == "r2"
    assert status(client)["last_reload_error"] is None
    assert client.post("/v1/decide", json=action()).json()["policy"]["revision"] == "r2"


def test_reloading_an_unchanged_bundle_reports_no_change(client: TestClient) -> None:
    """Reloading the same files activates the same digest and says it did not change."""
    body = client.post(RELOAD).json()
    assert body["changed"] is False
    assert body["bundle"]["digest"] == body["previous"]["digest"]


BROKEN: dict[str, tuple[str, str, str]] = {
    "broken-rego": (LAYER, LAYER_REGO + "\nbroken if {\n", "this is unclosed"),
    "unsupported-builtin": (
        LAYER,
        LAYER_REGO + '\ninternal if net.cidr_contains("10.0.0.0/8", input.ip)\n',
        "net.cidr_contains",
    ),
    "unknown-threat": (LAYER, LAYER_REGO.replace("[T2]\n", "[T2, T999]\n"), "T999"),
    "unannotated-rule": (
        LAYER,
        LAYER_REGO + '\nhitl contains {"rule": "L3.sneaky", "layer": "x"} if input.y\n',
        "emits L3.sneaky but no # METADATA block",
    ),
    "bad-data": ("data.json", "{not json", "data.json is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_refused_reload_keeps_the_active_bundle(
    client: TestClient, bundle: Path, case: str
) -> None:
    """A bundle that fails a check is not activated; the error shows in the answer and status."""
    path, text, expected = BROKEN[case]
    set_revision(bundle, "r2-broken")
    (bundle / path).write_text(text)
    response = client.post(RELOAD)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "bundle_error"
    assert expected in json.dumps(body)
    current = status(client)
    assert current["bundle"]["revision"] == "r1"
    assert current["last_reload_error"] == body["message"]
    assert expected in current["last_reload_error"]
    assert failures(client) == 1.0
    decision = client.post("/v1/decide", json=action("shell.exec")).json()
    assert (decision["decision"], decision["policy"]["revision"]) == ("deny", "r1")


def test_error_clears_after_a_good_reload(client: TestClient, bundle: Path) -> None:
    """After a refused reload, a fixed bundle activates and `last_reload_error` is cleared."""
    (bundle / LAYER).write_text(LAYER_REGO + "\nbroken if {\n")
    assert client.post(RELOAD).status_code == 422
    assert status(client)["last_reload_error"] is not None
    (bundle / LAYER).write_text(LAYER_REGO)
    set_revision(bundle, "r3")
    assert client.post(RELOAD).status_code == 200
    assert status(client)["last_reload_error"] is None
    assert status(client)["bundle"]["revision"] == "r3"


def test_bad_signature_keeps_the_active_bundle(tmp_path: Path, bundle: Path) -> None:
    """With signing configured, an unsigned change or a foreign signature is refused."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = tmp_path / "bundle.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    set_revision(bundle, "1.0.0")
    sign_directory(bundle, pem)
    settings = make_settings(tmp_path, bundle, bundle_public_key_file=public)
    with TestClient(create_app(settings)) as client:
        assert status(client)["bundle"]["revision"] == "1.0.0"
        set_revision(bundle, "2.0.0")
        response = client.post(RELOAD)
        assert response.status_code == 422
        assert ".manifest was altered" in response.json()["message"]
        assert response.json()["errors"][0]["code"] == "digest_mismatch"
        other = ed25519.Ed25519PrivateKey.generate()
        sign_directory(
            bundle,
            other.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        response = client.post(RELOAD)
        assert response.status_code == 422
        assert "does not verify with the configured key" in response.json()["message"]
        current = status(client)
        assert current["bundle"]["revision"] == "1.0.0"
        assert "does not verify" in current["last_reload_error"]
        assert failures(client) == 2.0
        sign_directory(bundle, pem)
        assert client.post(RELOAD).json()["bundle"]["revision"] == "2.0.0"


def test_watcher_reloads_a_changed_bundle_and_refuses_a_broken_one(
    tmp_path: Path, bundle: Path
) -> None:
    """With MAESTRO_GATE_BUNDLE_WATCH_S set, a change is picked up without any request."""
    settings = make_settings(tmp_path, bundle, bundle_watch_s=0.01)
    with TestClient(create_app(settings)) as client:
        assert status(client)["bundle"]["revision"] == "r1"
        set_revision(bundle, "r2")
        assert wait_for(lambda: status(client)["bundle"]["revision"] == "r2")
        (bundle / LAYER).write_text(LAYER_REGO + "\nbroken if {\n")
        set_revision(bundle, "r3-broken")
        assert wait_for(lambda: status(client)["last_reload_error"] is not None)
        assert "this is unclosed" in status(client)["last_reload_error"]
        assert status(client)["bundle"]["revision"] == "r2"
        (bundle / LAYER).write_text(LAYER_REGO)
        set_revision(bundle, "r4")
        assert wait_for(lambda: status(client)["bundle"]["revision"] == "r4")
        assert status(client)["last_reload_error"] is None


def test_settings_read_the_watch_interval_from_the_environment() -> None:
    """MAESTRO_GATE_BUNDLE_WATCH_S configures the watcher; 0 (the default) turns it off."""
    assert Settings.from_env({}).bundle_watch_s == 0
    assert Settings.from_env({"MAESTRO_GATE_BUNDLE_WATCH_S": "2.5"}).bundle_watch_s == 2.5


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Run the app under uvicorn on a free loopback port; yield its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def test_decisions_in_flight_see_the_old_or_the_new_revision(tmp_path: Path, bundle: Path) -> None:
    """Reloading over and over while clients decide: every answer is 200 and names a revision."""
    revisions = ["r1", "rev-a", "rev-b"]
    outcomes: list[tuple[int, str | None, str | None]] = []
    lock = threading.Lock()
    done = threading.Event()

    def decide(base: str) -> None:
        with httpx.Client(base_url=base) as http:
            while not done.is_set():
                response = http.post("/v1/decide", json=action("shell.exec"))
                body = response.json()
                revision = body.get("policy", {}).get("revision")
                with lock:
                    outcomes.append((response.status_code, body.get("decision"), revision))

    settings = make_settings(tmp_path, bundle, engine_workers=4)
    with serving(settings) as base:
        deciders = [threading.Thread(target=decide, args=(base,)) for _ in range(4)]
        for thread in deciders:
            thread.start()
        with httpx.Client(base_url=base) as admin:
            for i in range(12):
                set_revision(bundle, revisions[1 + i % 2])
                response = admin.post(RELOAD)
                assert response.status_code == 200, response.text
        done.set()
        for thread in deciders:
            thread.join()
    assert outcomes, "no decision was made"
    assert {(code, decision) for code, decision, _ in outcomes} == {(200, "deny")}
    assert {revision for _, _, revision in outcomes} <= set(revisions)
