"""Shared pieces of the console tests: principals for each role, settings, signing in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from maestro_gate.config import Settings
from tests.conftest import ROOT, make_settings
from tests.credentials import write_keys_file

AGENT_ID = "spiffe://corp.example/agent/analyst"
PRINCIPALS: dict[str, tuple[list[str], list[str]]] = {
    "auditor": (["auditor"], []),
    "alice": (["approver"], []),
    "bob": (["approver"], []),
    "admin": (["policy_admin"], []),
    "runtime": (["agent"], [AGENT_ID]),
}
"""Name -> (roles, subjects): an auditor, two approvers, a policy admin, the agent's runtime."""


def console_settings(
    tmp_path: Path, bundle: Path, **overrides: Any
) -> tuple[Settings, dict[str, str]]:
    """Settings with the console principals' keys file; (settings, {name: key})."""
    keys = write_keys_file(tmp_path / "console-keys.json", PRINCIPALS)
    settings = make_settings(
        tmp_path,
        bundle,
        api_keys_file=tmp_path / "console-keys.json",
        catalog_dir=ROOT / "catalog",
        **overrides,
    )
    return settings, keys


def login_token(html: str) -> str:
    """The CSRF token of a page's first form."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient | httpx.Client, key: str) -> httpx.Response:
    """Sign in through the form (GET for the token, POST the key); the POST's response."""
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"credential": key, "csrf": login_token(form.text)},
        follow_redirects=False,
    )
