"""The console over HTTP: sign-in, the session cookie, CSRF, role limits, filters, headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.auth.keys import KeyEntry, key_hash, write_keys
from maestro_gate.config import Settings
from maestro_gate.console.sessions import IDLE_S, LIFETIME_S, SessionStore
from tests.conftest import action
from tests.console_support import AGENT_ID, console_settings, login_token, sign_in


@pytest.fixture
def served(tmp_path: Path, bundle: Path) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    """The app with three decisions (deny, allow, require_hitl) by the analyst's runtime."""
    settings, keys = console_settings(tmp_path, bundle, credentials_refresh_s=0)
    with TestClient(create_app(settings)) as client:
        runtime = {"X-API-Key": keys["runtime"]}
        for body in (action("shell.exec"), action(), action(reversible=False)):
            assert client.post("/v1/decide", json=body, headers=runtime).status_code == 200
        client.cookies.clear()
        yield client, keys, settings


def test_signing_in_sets_an_http_only_strict_session_cookie(served: tuple) -> None:
    """A valid key: 303 to /console and an HttpOnly, SameSite=Strict cookie (no Secure on http)."""
    client, keys, _ = served
    response = sign_in(client, keys["auditor"])
    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("mg_console="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/log"


def test_the_cookie_is_secure_over_tls(served: tuple) -> None:
    """Served over https, the session cookie carries Secure."""
    client, keys, _ = served
    client.base_url = "https://testserver"
    response = sign_in(client, keys["auditor"])
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("mg_console="))
    assert "Secure" in cookie


@pytest.mark.parametrize(
    ("credential", "status", "says"),
    [
        ("mgk_not-a-key", 401, "not valid"),
        ("", 401, "credential is required"),
    ],
)
def test_a_bad_credential_is_refused_at_sign_in(
    served: tuple, credential: str, status: int, says: str
) -> None:
    """An unknown key or none gives the form again with the reason, and no session."""
    client, _, _ = served
    response = sign_in(client, credential)
    assert response.status_code == status
    assert says in response.text
    assert "mg_console=" not in "".join(response.headers.get_list("set-cookie"))


def test_an_agent_credential_has_no_console(served: tuple) -> None:
    """A caller with only the agent role is refused at sign-in (403)."""
    client, keys, _ = served
    response = sign_in(client, keys["runtime"])
    assert response.status_code == 403
    assert "no console role" in response.text


def test_sign_in_without_the_login_token_is_refused(served: tuple) -> None:
    """A sign-in POST without the form's token (login CSRF) opens no session."""
    client, keys, _ = served
    response = client.post("/console/login", data={"credential": keys["auditor"], "csrf": "x"})
    assert response.status_code == 403
    assert "expired" in response.text


def test_pages_without_a_session_send_the_browser_to_sign_in(served: tuple) -> None:
    """Every page redirects to the sign-in form; the scripts' JSON routes answer 401."""
    client, _, _ = served
    for path in ("/console", "/console/log", "/console/approvals", "/console/controls"):
        response = client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/console/login")
    assert client.get("/console/audit/checkpoint").status_code == 401
    assert client.get("/console/approvals/count").status_code == 401
    stop = client.post("/console/controls/stops", data={"kind": "agent", "id": "x"})
    assert stop.history[0].status_code == 303
    assert stop.url.path == "/console/login"


# Role -> (pages it is offered and may open, pages it is refused).
ROLE_PAGES = {
    "auditor": ({"log", "approvals", "stack", "posture"}, {"controls"}),
    "alice": ({"approvals"}, {"log", "stack", "posture", "controls"}),
    "admin": ({"stack", "controls"}, {"log", "approvals", "posture"}),
}


@pytest.mark.parametrize("who", sorted(ROLE_PAGES))
def test_pages_a_role_lacks_are_neither_offered_nor_served(served: tuple, who: str) -> None:
    """The navigation lists exactly the role's pages; the others answer 403 from the server."""
    client, keys, _ = served
    sign_in(client, keys[who])
    allowed, refused = ROLE_PAGES[who]
    html = client.get(f"/console/{sorted(allowed)[0]}").text
    offered = set(re.findall(r'<a href="/console/(log|approvals|stack|posture|controls)"', html))
    assert offered == allowed
    for page in allowed:
        assert client.get(f"/console/{page}").status_code == 200
    for page in refused:
        response = client.get(f"/console/{page}")
        assert response.status_code == 403
        assert "needs the role" in response.text


def test_actions_a_role_lacks_are_refused_by_the_server(served: tuple) -> None:
    """An auditor's session cannot vote or change controls, even with its valid CSRF token."""
    client, keys, _ = served
    sign_in(client, keys["auditor"])
    csrf = login_token(client.get("/console/log").text)
    for path, data in (
        ("/console/approvals/anything/approve", {"csrf": csrf}),
        ("/console/controls/mode", {"csrf": csrf, "mode": "shadow"}),
        ("/console/controls/stops", {"csrf": csrf, "kind": "agent", "id": AGENT_ID}),
    ):
        assert client.post(path, data=data).status_code == 403
    assert (
        client.get("/v1/admin/mode", headers={"X-API-Key": keys["admin"]}).json()["mode"]
        == "enforce"
    )


def test_state_changes_need_the_session_csrf_token_and_our_origin(served: tuple) -> None:
    """A change without the token, with a wrong one, or from another origin is refused (403)."""
    client, keys, _ = served
    sign_in(client, keys["admin"])
    csrf = login_token(client.get("/console/controls").text)
    stop = {"kind": "agent", "id": AGENT_ID}
    assert client.post("/console/controls/stops", data=stop).status_code == 403
    assert client.post("/console/controls/stops", data={**stop, "csrf": "wrong"}).status_code == 403
    foreign = client.post(
        "/console/controls/stops",
        data={**stop, "csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert (
        client.get("/v1/admin/emergency-stop", headers={"X-API-Key": keys["admin"]}).json()[
            "agents"
        ]
        == []
    )
    done = client.post(
        "/console/controls/stops", data={**stop, "csrf": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    stops = client.get("/v1/admin/emergency-stop", headers={"X-API-Key": keys["admin"]}).json()
    assert [s["id"] for s in stops["agents"]] == [AGENT_ID]
    assert stops["agents"][0]["by"] == "admin"


def test_signing_out_ends_the_session(served: tuple) -> None:
    """After sign-out (with the token) the old cookie opens nothing."""
    client, keys, _ = served
    sign_in(client, keys["auditor"])
    cookie = client.cookies.get("mg_console")
    csrf = login_token(client.get("/console/log").text)
    client.post("/console/logout", data={"csrf": csrf})
    client.cookies.set("mg_console", cookie or "", path="/console")
    assert client.get("/console/log", follow_redirects=False).status_code == 303


def test_a_revoked_key_ends_its_session_at_once(served: tuple) -> None:
    """The session's credential is checked on every request: removing the key signs it out."""
    client, keys, settings = served
    sign_in(client, keys["auditor"])
    assert client.get("/console/log").status_code == 200
    assert settings.api_keys_file is not None
    write_keys(
        settings.api_keys_file,
        [KeyEntry("alice", frozenset({"approver"}), frozenset(), key_hash(keys["alice"]))],
    )
    assert client.get("/console/log", follow_redirects=False).status_code == 303


def test_the_log_filters_combine(served: tuple) -> None:
    """decision, rule, agent and kind filters select the matching rows only; a bad time is 400."""
    client, keys, _ = served
    sign_in(client, keys["auditor"])

    def rows(query: str) -> list[str]:
        return re.findall(r'<span class="verdict (\w+)">', client.get(f"/console/log?{query}").text)

    assert sorted(rows("")) == ["allow", "deny", "require_hitl"]
    assert rows("decision=deny") == ["deny"]
    assert rows("rule=L6.irreversible_action&agent=" + AGENT_ID) == ["require_hitl"]
    assert rows("rule=L6.irreversible_action&decision=deny") == []
    assert rows("threat=T2&layer=l3_agent_frameworks&kind=agent_action") == ["deny"]
    assert rows("since=2000-01-01T00:00&until=2000-01-02") == []
    assert client.get("/console/log?since=yesterday").status_code == 400


def test_pages_carry_a_strict_content_security_policy(served: tuple) -> None:
    """Pages allow scripts and styles from the console itself only, and no framing."""
    client, keys, _ = served
    sign_in(client, keys["auditor"])
    response = client.get("/console/log")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["cache-control"] == "no-store"
    assert 'src="http' not in response.text
    assert client.get("/console/static/verify.js").status_code == 200
    assert client.get("/console/static/..%2Fpages.py").status_code == 404


def test_sessions_end_when_idle_or_too_old_and_the_oldest_is_evicted() -> None:
    """Idle past IDLE_S or alive past LIFETIME_S, a session is gone; past the cap, the oldest."""
    store = SessionStore(max_sessions=2)
    idle, session = store.open("key-a")
    session.seen -= IDLE_S + 1
    assert store.get(idle) is None
    old, session = store.open("key-b")
    session.created -= LIFETIME_S + 1
    assert store.get(old) is None
    first, _ = store.open("key-c")
    second, _ = store.open("key-d")
    third, _ = store.open("key-e")
    assert store.get(first) is None
    assert store.get(second) is not None
    assert store.get(third) is not None
    assert len(store) == 2


def test_a_jwt_signs_in_with_the_roles_it_carries(tmp_path: Path) -> None:
    """A JWT from the configured issuer opens a session limited to the roles in its claim."""
    from tests.test_auth import _jwt_settings, _token

    settings, private = _jwt_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        token = _token(private, "EdDSA", sub="reviewer-7", roles=["auditor"])
        response = sign_in(client, token)
        assert response.status_code == 303
        assert client.get("/console/log").status_code == 200
        assert "reviewer-7" in client.get("/console/log").text
        assert client.get("/console/controls").status_code == 403
