"""Idempotent retries of `POST /v1/decide`: the same request_id gets the decision already recorded,
audited once; a different request under that request_id is 409 `request_id_reused`.

A real server on loopback (uvicorn), the real engine on the test bundle, and the audit log on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from maestro_gate.config import Settings
from tests.auth_support import CODER, act, gate_settings
from tests.fault_support import own_database
from tests.test_hot_reload import serving


@dataclass
class Served:
    """Settings of a gate, and the headers of its principals."""

    settings: Settings
    headers: dict[str, dict[str, str]]

    def decide(self, url: str, body: dict[str, Any], who: str = "runtime") -> httpx.Response:
        """POST /v1/decide as `who`."""
        return httpx.post(f"{url}/v1/decide", json=body, headers=self.headers[who], timeout=30)

    def decisions(self, url: str, request_id: str) -> list[dict[str, Any]]:
        """The decision records (export lines) whose input carries `request_id`."""
        page = httpx.get(
            f"{url}/v1/audit/entries",
            params={"start": 0, "end": 1000},
            headers=self.headers["auditor"],
            timeout=30,
        )
        assert page.status_code == 200, page.text
        return [
            line
            for line in page.json()["entries"]
            if line["input"].get("request_id") == request_id and "decision_id" in line
        ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gate(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """Settings of a gate whose audit log is SQLite in tmp_path or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        settings, headers = gate_settings(tmp_path)
        yield Served(settings, headers)
        return
    with own_database() as dsn:
        settings, headers = gate_settings(tmp_path, audit_dsn=dsn)
        yield Served(settings, headers)


def test_a_retry_gets_the_recorded_decision_audited_once(gate: Served) -> None:
    """The same request sent twice with one request_id: one answer, byte for byte, one record."""
    body = act(request_id="retry-1")
    with serving(gate.settings) as url:
        first = gate.decide(url, body)
        again = gate.decide(url, body)
        recorded = gate.decisions(url, "retry-1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["decision"] == "allow"
    assert again.content == first.content
    assert [r["decision_id"] for r in recorded] == [first.json()["decision_id"]]


def test_a_changed_request_under_a_used_request_id_is_409_and_never_the_old_allow(
    gate: Served,
) -> None:
    """An allowed request's request_id reused for a denied action: 409, nothing recorded."""
    with serving(gate.settings) as url:
        allowed = gate.decide(url, act(request_id="retry-2"))
        changed = gate.decide(url, act("shell.exec", request_id="retry-2"))
        recorded = gate.decisions(url, "retry-2")
    assert allowed.json()["decision"] == "allow"
    assert changed.status_code == 409
    assert changed.json()["code"] == "request_id_reused"
    assert "decision" not in changed.json()
    assert len(recorded) == 1


def test_a_retried_deny_and_a_retried_require_hitl_keep_their_answer(gate: Served) -> None:
    """A deny stays the same deny; a require_hitl keeps its approval, and opens no second one."""
    with serving(gate.settings) as url:
        denied = [gate.decide(url, act("shell.exec", request_id="d-1")) for _ in range(2)]
        held = [gate.decide(url, act("payments.refund", request_id="h-1")) for _ in range(2)]
        pending = httpx.get(
            f"{url}/v1/approvals",
            params={"status": "pending"},
            headers=gate.headers["alice"],
            timeout=30,
        ).json()["approvals"]
    assert [d.json()["decision"] for d in denied] == ["deny", "deny"]
    assert denied[0].content == denied[1].content
    assert [h.json()["decision"] for h in held] == ["require_hitl", "require_hitl"]
    assert held[0].json()["approval"]["id"] == held[1].json()["approval"]["id"]
    assert held[0].json()["decision_id"] == held[1].json()["decision_id"]
    assert len(pending) == 1


def test_the_request_id_is_the_subjects_own(gate: Served) -> None:
    """Another agent's request with the same request_id is its own decision."""
    with serving(gate.settings) as url:
        analyst = gate.decide(url, act(request_id="shared-1"))
        coder = gate.decide(url, act(subject=CODER, request_id="shared-1"), who="coder-runtime")
    assert (analyst.status_code, coder.status_code) == (200, 200)
    assert analyst.json()["decision_id"] != coder.json()["decision_id"]


def test_concurrent_retries_are_decided_once(gate: Served) -> None:
    """Eight copies of one request at once: one decision, one record, eight equal answers."""
    body = act(request_id="burst-1")
    with serving(gate.settings) as url:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: gate.decide(url, body), range(8)))
        recorded = gate.decisions(url, "burst-1")
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["decision_id"] for a in answers}) == 1
    assert len(recorded) == 1


def test_a_retry_after_a_restart_gets_the_decision_from_the_log(gate: Served) -> None:
    """The recorded decision is found in the audit store, not in the process's memory."""
    body = act(request_id="restart-1")
    with serving(gate.settings) as url:
        first = gate.decide(url, body)
    with serving(gate.settings) as url:
        again = gate.decide(url, body)
        recorded = gate.decisions(url, "restart-1")
    assert again.json()["decision_id"] == first.json()["decision_id"]
    assert again.json()["audit"] == first.json()["audit"]
    assert len(recorded) == 1


def test_without_a_request_id_every_request_is_decided(gate: Served) -> None:
    """Two requests without request_id are two decisions."""
    with serving(gate.settings) as url:
        one, two = gate.decide(url, act()), gate.decide(url, act())
    assert one.json()["decision_id"] != two.json()["decision_id"]
