"""The console in a real browser: Debian's chromium driven by Playwright (no browser download).

One browser for the module, one gate on loopback for most tests, a fresh browser context (so a
fresh localStorage: nothing pinned) per test. The decision page's verification is checked on
records and proofs the service issued, and on altered ones: a record edited in the database,
a proof or a checkpoint changed on the wire, a wrong pinned key, and a log rewritten between
two visits. Screenshots of each page go to var/test-artifacts/console/.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from maestro_gate.audit.checkpoint_keys import load_signer
from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.config import Settings
from maestro_gate.core.catalog.coverage import coverage_report
from maestro_gate.core.catalog.files import load_answers, load_catalog
from tests.conftest import POLICIES, ROOT, action
from tests.console_support import console_settings
from tests.test_hot_reload import serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "console"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


class Gate:
    """A served gate: its base URL, settings, keys, and an HTTP client per principal."""

    def __init__(self, base: str, settings: Settings, keys: dict[str, str]) -> None:
        self.base, self.settings, self.keys = base, settings, keys

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call with `who`'s key."""
        headers = {"X-API-Key": self.keys[who]}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        """A decision for the agent's runtime."""
        response = self.call("runtime", "POST", "/v1/decide", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def sign_checkpoint(self) -> dict[str, Any]:
        """A fresh signed checkpoint of the whole log."""
        found: dict[str, Any] = self.call(
            "auditor", "GET", "/v1/audit/checkpoint?fresh=true"
        ).json()
        return found

    def vkey(self) -> str:
        """The log's verification key text (what an operator hands the reviewer once)."""
        signer, _ = load_signer(
            self.settings.checkpoint_key_file, self.settings.checkpoint_origin, create=False
        )
        return signer.verifier_key.text()

    @property
    def db(self) -> Path:
        return Path(self.settings.audit_dsn.removeprefix("sqlite:///"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (root needs --no-sandbox)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def start_gate(directory: Path, bundle: Path) -> Iterator[Gate]:
    """Serve a gate with the console principals on loopback."""
    settings, keys = console_settings(directory, bundle, checkpoint_interval_s=0)
    with serving(settings) as base:
        yield Gate(base, settings, keys)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    """A gate on the small test bundle with a deny, an allow and a signed checkpoint."""
    from tests.conftest import write_bundle

    directory = tmp_path_factory.mktemp("console")
    for served in start_gate(directory, write_bundle(directory / "bundle")):
        served.decide(action("shell.exec"))
        served.decide(action("web.search", context={"trace_id": "trace-two"}))
        served.sign_checkpoint()
        yield served


@pytest.fixture
def page(browser: Browser, gate: Gate) -> Iterator[Page]:
    """A page in a fresh browser context (empty localStorage) on the gate."""
    context = browser.new_context(base_url=gate.base, viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, key: str) -> None:
    """Sign in through the form."""
    page.goto("/console/login")
    page.fill("#credential", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def verification(page: Page, decision_id: str, vkey: str | None) -> tuple[str, str]:
    """Open a decision page, pin `vkey` if given; (data-result, verdict text) once it concludes."""
    page.goto(f"/console/decisions/{decision_id}")
    if vkey is not None:
        page.wait_for_selector("#pin-form:not([hidden])")
        page.fill("#vkey", vkey)
        page.click("#pin-form button")
    page.wait_for_selector("#verification[data-result]")
    result = page.get_attribute("#verification", "data-result") or ""
    return result, page.inner_text("#verdict")


def newest_decision(gate: Gate, **where: str) -> tuple[str, int]:
    """(decision id, index) of the newest record matching `where` in the log."""
    rows = gate.call("auditor", "GET", "/v1/audit/entries").json()["entries"]
    for row in reversed(rows):
        record = json.loads(row["record"])
        if all(record.get(k) == v for k, v in where.items()):
            return str(record["decision_id"]), int(record["index"])
    raise AssertionError(f"no record with {where}")


def test_signing_in_opens_the_log_and_a_bad_key_is_refused(page: Page, gate: Gate) -> None:
    """The auditor lands on the decision log; a wrong key stays on the form with the reason."""
    page.goto("/console/log")
    assert page.url.endswith("/console/login")
    shot(page, "login")
    sign_in(page, "mgk_wrong")
    assert "not valid" in page.inner_text(".problem")
    sign_in(page, gate.keys["auditor"])
    assert page.url.endswith("/console/log")
    assert page.locator("#log tbody tr").count() >= 2
    shot(page, "log")


@pytest.mark.parametrize(
    ("who", "offered", "refused"),
    [
        ("alice", ["Approvals"], "/console/log"),
        ("admin", ["MAESTRO stack", "Mode and stops"], "/console/approvals"),
        (
            "auditor",
            ["Decision log", "Approvals", "MAESTRO stack", "Threat Mapper"],
            "/console/controls",
        ),
    ],
)
def test_a_role_is_offered_its_pages_only_and_refused_the_rest(
    page: Page, gate: Gate, who: str, offered: list[str], refused: str
) -> None:
    """The navigation holds the role's pages; typing another page's address gives a 403 page."""
    sign_in(page, gate.keys[who])
    links = [
        t.split(" ")[0] if t.startswith("Approvals") else t
        for t in page.locator(".bar nav a").all_inner_texts()
    ]
    assert [t.strip() for t in links] == offered
    response = page.goto(refused)
    assert response is not None
    assert response.status == 403
    assert "needs the role" in page.inner_text(".problem")
    if who == "alice":
        shot(page, "refused")


def test_filters_narrow_the_log(page: Page, gate: Gate) -> None:
    """Choosing decision=deny and a rule shows only that record; a trace id finds its record."""
    sign_in(page, gate.keys["auditor"])
    page.select_option("select[name=decision]", "deny")
    page.fill("input[name=rule]", "L3.tool_not_allowlisted")
    page.click(".filters button[type=submit]")
    page.wait_for_load_state()
    verdicts = page.locator("#log tbody .verdict").all_inner_texts()
    assert verdicts
    assert set(verdicts) == {"deny"}
    shot(page, "log-filtered")
    page.goto("/console/log?trace_id=trace-two")
    assert page.locator("#log tbody tr").count() == 1
    assert page.locator("#log tbody .verdict").inner_text() == "allow"


def test_a_record_the_service_issued_verifies_and_a_later_visit_checks_consistency(
    page: Page, gate: Gate
) -> None:
    """Pinned key: leaf, inclusion and signature verify; the next visit proves the log grew only."""
    sign_in(page, gate.keys["auditor"])
    decision_id, _ = newest_decision(gate, decision="deny")
    result, text = verification(page, decision_id, gate.vkey())
    assert result == "verified", text
    checks = page.inner_text("#checks")
    assert "Leaf hash recomputed" in checks
    assert "Ed25519 verified" in checks
    assert "First check with this key" in checks
    shot(page, "decision-verified")
    gate.decide(action("web.search"))
    gate.sign_checkpoint()
    result, text = verification(page, decision_id, None)
    assert result == "verified", text
    assert "Consistent with the checkpoint pinned at the last visit" in page.inner_text("#checks")


def test_a_record_edited_in_the_database_fails(page: Page, gate: Gate) -> None:
    """A deny rewritten to allow in the stored record no longer hashes into the signed tree."""
    sign_in(page, gate.keys["auditor"])
    decision_id, index = newest_decision(gate, decision="deny")
    with sqlite3.connect(gate.db) as conn:
        [(original,)] = conn.execute("SELECT record FROM audit_records WHERE idx = ?", (index,))
        edited = bytes(original).replace(b'"decision":"deny"', b'"decision":"allow"')
        conn.execute("UPDATE audit_records SET record = ? WHERE idx = ?", (edited, index))
    try:
        result, text = verification(page, decision_id, gate.vkey())
        shot(page, "decision-tampered")
    finally:
        with sqlite3.connect(gate.db) as conn:
            conn.execute("UPDATE audit_records SET record = ? WHERE idx = ?", (original, index))
    assert result == "failed"
    assert "not the signed" in text


def _altered(route: Route, change: Any) -> None:
    answer = route.fetch()
    body = answer.json()
    change(body)
    route.fulfill(response=answer, json=body)


def _flip(hex_text: str) -> str:
    return hex_text[:-1] + ("0" if hex_text[-1] != "0" else "1")


def test_an_altered_inclusion_proof_fails(page: Page, gate: Gate) -> None:
    """One hash of the proof changed on the wire: the computed root is not the signed one."""
    sign_in(page, gate.keys["auditor"])
    decision_id, _ = newest_decision(gate, decision="deny")

    def change(body: dict[str, Any]) -> None:
        body["proof"][0] = _flip(body["proof"][0])

    page.route("**/console/audit/inclusion*", lambda route: _altered(route, change))
    result, text = verification(page, decision_id, gate.vkey())
    assert result == "failed"
    assert "not the signed" in text


def test_an_altered_checkpoint_signature_fails(page: Page, gate: Gate) -> None:
    """A checkpoint whose root was changed keeps its signature, which then does not verify."""
    sign_in(page, gate.keys["auditor"])
    decision_id, _ = newest_decision(gate, decision="deny")

    def change(body: dict[str, Any]) -> None:
        lines = body["checkpoint"]["note"].split("\n")
        lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]
        body["checkpoint"]["note"] = "\n".join(lines)

    page.route("**/console/audit/checkpoint", lambda route: _altered(route, change))
    result, text = verification(page, decision_id, gate.vkey())
    assert result == "failed"
    assert "does not verify against the pinned key" in text


def test_a_wrong_pinned_key_fails(page: Page, gate: Gate, tmp_path: Path) -> None:
    """Pinned to another key of the same name, the checkpoint carries no signature by it."""
    sign_in(page, gate.keys["auditor"])
    decision_id, _ = newest_decision(gate, decision="deny")
    other, _ = load_signer(tmp_path / "other.key", gate.settings.checkpoint_origin, create=True)
    result, text = verification(page, decision_id, other.verifier_key.text())
    assert result == "failed"
    assert "no signature by the pinned key" in text
    shot(page, "decision-wrong-key")


def test_a_log_rewritten_since_the_last_visit_is_caught(browser: Browser, tmp_path: Path) -> None:
    """Every record re-sealed after one was altered, re-signed by the real key: the pinned
    checkpoint's records are no longer a prefix of the log, and the page says so."""
    from tests.conftest import write_bundle

    for gate in start_gate(tmp_path, write_bundle(tmp_path / "bundle")):
        for tool in ("shell.exec", "web.search", "web.search"):
            gate.decide(action(tool))
        gate.sign_checkpoint()
        context = browser.new_context(base_url=gate.base)
        page = context.new_page()
        sign_in(page, gate.keys["auditor"])
        decision_id, _ = newest_decision(gate, decision="deny")
        assert verification(page, decision_id, gate.vkey())[0] == "verified"
        _rewrite(gate.db, {"decision": "allow"})
        gate.decide(action("web.search"))
        gate.sign_checkpoint()
        result, text = verification(page, decision_id, None)
        shot(page, "decision-rewritten-log")
        context.close()
        assert result == "failed"
        assert "rewritten" in text


def _rewrite(path: Path, change: dict[str, Any]) -> None:
    """The attacker's rewrite: alter record 0, then re-append everything with fresh hashes."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT record FROM audit_records ORDER BY idx").fetchall()
        for table in (
            "audit_records",
            "audit_nodes",
            "audit_facets",
            "audit_tags",
            "audit_checkpoints",
        ):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
    bodies = [json.loads(row[0]) for row in rows]
    bodies[0].update(change)
    log = SqliteAuditLog(path)
    log.start()
    try:

        async def again() -> None:
            for one in bodies:
                del one["index"], one["prev"]
                await log.append(one)

        # Playwright's sync API holds this thread's event loop: append from another thread.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, again()).result()
    finally:
        log.close()


def test_approving_from_the_queue_lets_the_resubmission_through(
    browser: Browser, gate: Gate
) -> None:
    """Two distinct approvers approve in the console; the live count follows without a reload;
    the agent's re-submission with the approval is then allowed."""
    body = action("web.search", reversible=False)
    answer = gate.decide(body)
    assert answer["decision"] == "require_hitl"
    approval_id = answer["approval"]["id"]
    pages = []
    for who in ("alice", "bob"):
        context = browser.new_context(base_url=gate.base, viewport={"width": 1360, "height": 900})
        pages.append(context.new_page())
        sign_in(pages[-1], gate.keys[who])
    alice, bob = pages
    card = f"[data-approval='{approval_id}']"
    assert "0 of 2" in alice.inner_text(f"{card} .tally")
    expect(alice.locator("#pending-count")).to_have_text(re.compile(r"^[0-9]+$"))
    pending = int(alice.inner_text("#pending-count"))
    shot(alice, "approvals")
    gate.decide(action("web.search", reversible=False))  # another one, counted live
    expect(alice.locator("#pending-count")).to_have_text(str(pending + 1), timeout=8000)
    alice.click(f"{card} button.approve")
    alice.wait_for_load_state()
    assert "Vote recorded: approved" in alice.inner_text(".done")
    assert gate.decide({**body, "approval_id": approval_id})["decision"] != "allow"
    bob.goto("/console/approvals")
    assert "1 of 2" in bob.inner_text(f"{card} .tally")
    bob.click(f"{card} button.approve")
    bob.wait_for_load_state()
    assert bob.locator(card).count() == 0  # granted: no longer pending
    assert gate.decide({**body, "approval_id": approval_id})["decision"] == "allow"
    for opened in pages:
        opened.context.close()


def test_the_policy_admin_stops_an_agent_from_the_console(page: Page, gate: Gate) -> None:
    """An emergency stop set in the console denies the agent at once; lifting it restores it."""
    sign_in(page, gate.keys["admin"])
    page.goto("/console/controls")
    page.fill("form.stop input[name=id]", "spiffe://corp.example/agent/analyst")
    page.fill("form.stop input[name=reason]", "console test")
    page.click("form.stop button")
    page.wait_for_load_state()
    assert "stop added" in page.inner_text(".done")
    shot(page, "controls")
    assert gate.decide(action("web.search"))["decision"] == "deny"
    page.click(".stops button")
    page.wait_for_load_state()
    assert "stop lifted" in page.inner_text(".done")
    assert gate.decide(action("web.search"))["decision"] == "allow"


def test_the_stack_figures_are_catalog_coverage(browser: Browser, tmp_path: Path) -> None:
    """On the real bundle, the stack page's totals and per-layer threat counts are those of
    `catalog coverage`; the Threat Mapper page draws the topology, a blast radius and grants."""
    report = coverage_report(
        POLICIES, load_catalog(ROOT / "catalog"), load_answers(ROOT / "catalog")
    )
    answered = {s.id: s.state for s in report.threat_states if s.state != "enforced"}
    assert set(answered.values()) == {"credited", "out_of_reach"}
    for gate in start_gate(tmp_path, POLICIES):
        context = browser.new_context(base_url=gate.base, viewport={"width": 1360, "height": 900})
        page = context.new_page()
        sign_in(page, gate.keys["auditor"])
        page.goto("/console/stack?window=all")
        assert int(page.inner_text("#threats-covered")) == report.threats_covered
        assert int(page.inner_text("#threats-total")) == report.threats_total
        assert int(page.inner_text("#rules-total")) == len(report.rules)
        for layer in report.layers:
            covered = page.inner_text(f"[data-layer='{layer.id}'] .covered")
            assert covered == f"{sum(t.covered for t in layer.threats)}/{len(layer.threats)}"
        for threat, state in answered.items():  # answered, not shown as a gap
            row = page.locator(f"tr#{threat}").first.inner_text()
            assert ("credited:" if state == "credited" else "out of reach:") in row, row
            assert "coverage gap" not in row
        shot(page, "stack")
        page.goto("/console/posture?days=7&agent=orchestrator")
        assert page.locator("#topology svg").count() == 1
        assert "orchestrator" in page.inner_text("#blast-radius")
        assert page.locator("#grants pre").count() == 1
        shot(page, "threat-mapper")
        context.close()


def test_a_record_newer_than_the_checkpoint_is_verified_once_one_is_signed(
    page: Page, gate: Gate
) -> None:
    """Past the latest checkpoint the page says so and offers a signature; then it verifies."""
    sign_in(page, gate.keys["auditor"])
    decision_id = gate.decide(action("shell.exec"))["decision_id"]
    result, text = verification(page, decision_id, gate.vkey())
    assert result == "failed"
    assert "newer than the latest signed checkpoint" in text
    page.click("#sign-now")
    page.wait_for_selector("#verification[data-result='verified']")


def test_the_stack_counts_the_window_s_denials_per_layer(page: Page, gate: Gate) -> None:
    """The L3 figure on the stack page is the number of L3 denials in the log."""
    entries = gate.call("auditor", "GET", "/v1/audit/entries").json()["entries"]
    denials = sum(
        1
        for row in entries
        if (record := json.loads(row["record"])).get("decision") == "deny"
        and record["result"]["layers"].get("l3_agent_frameworks") == "deny"
    )
    assert denials >= 1
    sign_in(page, gate.keys["auditor"])
    page.goto("/console/stack?window=all")
    assert page.inner_text("[data-layer='l3_agent_frameworks'] .denials") == str(denials)
    assert page.inner_text("[data-layer='l1_foundation_models'] .denials") == "0"
