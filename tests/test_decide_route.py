"""`POST /v1/decide` has one door: FastAPI's route, with its dependencies and error handlers.

What the ASGI shortcut once answered for the route (issue 16 removed it), the route answers
itself: the same statuses, codes, headers and counts. Real engine, real SQLite audit log,
lifespan running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from starlette.types import Message, Receive, Scope, Send

from maestro_gate.api.app import create_app
from maestro_gate.api.http_errors import CHALLENGE
from maestro_gate.config import Settings
from tests.auth_support import CODER, act, events, gate_settings


@dataclass
class FastAPIEntries:
    """Wraps FastAPI's middleware stack and records each HTTP request that enters it."""

    stack: Any
    seen: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.stack(scope, receive, send)


@dataclass
class Served:
    """A running app, its two ways in, and the credential headers of the test principals."""

    client: TestClient
    app: FastAPI
    settings: Settings
    headers: dict[str, dict[str, str]]

    def twice(self, method: str, path: str, **kwargs: Any) -> tuple[Response, Response]:
        """The same request answered twice by the route."""
        first = self.client.request(method, path, **_fresh(kwargs))
        second = self.client.request(method, path, **_fresh(kwargs))
        return first, second

    def asgi(
        self, scope: Scope, incoming: list[Message], sent: list[Message] | None = None
    ) -> list[Message]:
        """Call the app in its event loop with `incoming` (the last repeats); what it sent."""
        sent = [] if sent is None else sent

        async def receive() -> Message:
            assert incoming, "the app read past the end of the request"
            return incoming.pop(0) if len(incoming) > 1 else incoming[0]

        async def send(message: Message) -> None:
            sent.append(message)

        async def call() -> None:
            with anyio.fail_after(5):
                await self.app(scope, receive, send)

        assert self.client.portal is not None
        self.client.portal.call(call)
        return sent


def _fresh(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Request arguments with a new generator for a streamed body, so it can be sent twice."""
    content = kwargs.get("content")
    return {**kwargs, "content": content()} if callable(content) else kwargs


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The real app (small body cap) behind a test client."""
    settings, headers = gate_settings(tmp_path, max_body_bytes=4096)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Served(client, app, settings, headers)


JSON_TYPE = (b"content-type", b"application/json")


def _decide_scope(method: str = "POST", **extra: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/v1/decide",
        "raw_path": b"/v1/decide",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    scope.update(extra)
    return scope


def test_every_request_goes_through_fastapi_and_other_methods_are_405(served: Served) -> None:
    """POST /v1/decide enters FastAPI's stack like every other request; GET/HEAD are 405."""
    entries = FastAPIEntries(served.app.middleware_stack)
    served.app.middleware_stack = entries
    runtime = served.headers["runtime"]

    decided = served.client.post("/v1/decide", json=act(), headers=runtime)
    refused = served.client.post("/v1/decide", json=act())
    wrong_method = served.client.get("/v1/decide", headers=runtime)
    head = served.client.head("/v1/decide", headers=runtime)
    status = served.client.get("/v1/status", headers=runtime)
    openapi = served.client.get("/openapi.json")

    assert (decided.status_code, decided.json()["decision"]) == (200, "allow")
    assert refused.status_code == 401
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    assert head.status_code == 405
    assert (status.status_code, openapi.status_code) == (200, 200)
    assert entries.seen == [
        ("POST", "/v1/decide"),
        ("POST", "/v1/decide"),
        ("GET", "/v1/decide"),
        ("HEAD", "/v1/decide"),
        ("GET", "/v1/status"),
        ("GET", "/openapi.json"),
    ]


def test_valid_decision_is_200_with_the_routes_headers(served: Served) -> None:
    """A decision answers 200 application/json, the same headers and fields every time."""
    fast_answer, routed = served.twice(
        "POST", "/v1/decide", json=act(), headers=served.headers["runtime"]
    )
    assert (fast_answer.status_code, routed.status_code) == (200, 200)
    assert [k for k, _ in fast_answer.headers.raw] == [k for k, _ in routed.headers.raw]
    assert fast_answer.headers["content-type"] == "application/json"
    assert int(fast_answer.headers["content-length"]) == len(fast_answer.content)
    mine, theirs = fast_answer.json(), routed.json()
    assert mine.keys() == theirs.keys()
    assert mine["decision"] == theirs["decision"] == "allow"
    assert mine["audit"]["index"] + 1 == theirs["audit"]["index"]


def _chunked_over_cap() -> Iterator[bytes]:
    yield b'{"kind": "agent_action", "arguments": {"blob": "'
    for _ in range(8):
        yield b"x" * 1024
    yield b'"}}'


ACT = json.dumps(act()).encode()
TOO_DEEP = b'{"kind": "agent_action", "a": ' + b'{"a":' * 40 + b"1" + b"}" * 41

REFUSALS: list[tuple[str, str | None, dict[str, Any], int, str]] = [
    ("no credential", None, {"json": act()}, 401, "unauthorized"),
    ("unknown key", "forged", {"json": act()}, 401, "unauthorized"),
    ("wrong role", "alice", {"json": act()}, 403, "forbidden"),
    ("too large by length", "runtime", {"json": act(blob="x" * 5000)}, 413, "request_too_large"),
    ("too large streamed", "runtime", {"content": _chunked_over_cap}, 413, "request_too_large"),
    ("invalid JSON", "runtime", {"content": b'{"kind": "agent_'}, 400, "invalid_parameter"),
    ("empty body", "runtime", {"content": b"  "}, 400, "invalid_parameter"),
    ("NaN", "runtime", {"content": b'{"kind": "x", "n": NaN}'}, 400, "invalid_parameter"),
    ("too deep", "runtime", {"content": TOO_DEEP}, 400, "request_too_deep"),
    ("not an object", "runtime", {"content": b"[1, 2]"}, 422, "invalid_request"),
    ("unknown kind", "runtime", {"json": {**act(), "kind": "teleport"}}, 422, "invalid_request"),
    ("missing field", "runtime", {"json": {**act(), "action": None}}, 422, "invalid_request"),
    ("impersonation", "runtime", {"json": act(subject=CODER)}, 403, "subject_not_bound"),
    ("no media type", "runtime", {"content": ACT, "headers": {}}, 415, "unsupported_media_type"),
    ("text media type", "runtime", {"content": ACT, "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("UTF-16", "runtime", {"content": ACT.decode().encode("utf-16")}, 400, "invalid_parameter"),
    ("duplicate key", "runtime", {"content": ACT[:-1] + b', "action": "shell.exec"}'}, 400,
     "duplicate_key"),
    ("float overflow", "runtime", {"content": ACT[:-1] + b', "arguments": {"n": 1e400}}'}, 400,
     "invalid_parameter"),
    ("coerced boolean", "runtime", {"json": act(reversible="false")}, 422, "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "request_args", "status", "code"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_refusals_are_byte_for_byte_the_routes(
    served: Served, who: str | None, request_args: dict[str, Any], status: int, code: str
) -> None:
    """Every refusal has its documented status and code, the same headers and bytes each time."""
    headers = {"X-API-Key": "mgk_forged"} if who == "forged" else served.headers.get(who or "", {})
    args = dict(request_args)
    typed = args.pop("headers", {"content-type": "application/json"} if "content" in args else {})
    headers = {**typed, **headers}
    fast_answer, routed = served.twice("POST", "/v1/decide", headers=headers, **args)
    assert (fast_answer.status_code, fast_answer.json()["code"]) == (status, code)
    assert fast_answer.json()["message"]
    assert fast_answer.headers.raw == routed.headers.raw
    assert fast_answer.content == routed.content
    assert routed.status_code == status
    if status == 401:
        assert fast_answer.headers["www-authenticate"] == CHALLENGE


def test_unknown_kind_names_the_kinds(served: Served) -> None:
    """An unknown kind is 422 with an `unknown_kind` entry at `/kind`."""
    answer = served.client.post(
        "/v1/decide", json={**act(), "kind": "teleport"}, headers=served.headers["runtime"]
    )
    assert answer.status_code == 422
    assert "agent_action, data_movement, delegation" in answer.json()["message"]
    assert answer.json()["errors"] == [
        {"code": "unknown_kind", "message": "unknown or missing kind", "location": "/kind"}
    ]


def test_refused_callers_are_counted_and_impersonation_audited(served: Served) -> None:
    """The route counts refusals by code and records the impersonation attempt."""
    served.client.post("/v1/decide", json=act())
    served.client.post("/v1/decide", json=act(), headers=served.headers["alice"])
    served.client.post("/v1/decide", json=act(subject=CODER), headers=served.headers["runtime"])
    metrics = served.client.get("/metrics").text
    for code in ("unauthorized", "forbidden", "subject_not_bound"):
        assert f'maestro_refused_callers_total{{code="{code}"}} 1.0' in metrics
    [attempt] = events(served.settings, "impersonation_attempt")
    assert (attempt["subject"], attempt["detail"]["principal"]) == (CODER, "runtime")


def test_audit_failure_is_503_and_no_decision(served: Served) -> None:
    """A log that cannot record answers 503 audit_unavailable, and no decision."""
    served.app.state.gate.audit.close()
    fast_answer, routed = served.twice(
        "POST", "/v1/decide", json=act(), headers=served.headers["runtime"]
    )
    assert (fast_answer.status_code, fast_answer.json()["code"]) == (503, "audit_unavailable")
    assert fast_answer.content == routed.content


def test_unexpected_error_is_500_logged_and_leaks_nothing(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that is no gate error: 500 internal_error, logged with its type, re-raised."""

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(served.app.state.gate.decisions.point, "decide", broken)
    with structlog.testing.capture_logs() as logs:
        fast_answer, routed = served.twice(
            "POST", "/v1/decide", json=act(), headers=served.headers["runtime"]
        )
    assert fast_answer.status_code == 500
    assert fast_answer.json() == {"code": "internal_error", "message": "internal error"}
    assert fast_answer.headers.raw == routed.headers.raw
    assert fast_answer.content == routed.content
    logged = [(e["event"], e["error"], e["log_level"]) for e in logs]
    assert logged == [("unexpected_error", "RuntimeError", "error")] * 2

    key = served.headers["runtime"]["X-API-Key"].encode()
    sent: list[Message] = []
    with pytest.raises(RuntimeError, match="secret detail"):
        served.asgi(
            _decide_scope(headers=[(b"x-api-key", key), JSON_TYPE]),
            [{"type": "http.request", "body": json.dumps(act()).encode()}],
            sent,
        )
    assert [m.get("status") for m in sent] == [500, None]


def test_declared_length_over_the_cap_is_413_before_reading(served: Served) -> None:
    """A Content-Length past the cap is refused without reading a byte of the body."""
    key = served.headers["runtime"]["X-API-Key"].encode()
    scope = _decide_scope(headers=[(b"x-api-key", key), (b"content-length", b"5000")])
    start, body = served.asgi(scope, [])
    assert start["status"] == 413
    assert json.loads(body["body"])["code"] == "request_too_large"


def test_client_gone_while_the_body_is_read_gets_no_answer_and_no_hang(served: Served) -> None:
    """A disconnect mid-body ends the request quietly: nothing sent, nothing raised, no record."""
    key = served.headers["runtime"]["X-API-Key"].encode()
    scope = _decide_scope(headers=[(b"x-api-key", key), JSON_TYPE])
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"kind": "agent_', "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert served.asgi(scope, incoming) == []
    status = served.client.get("/v1/status", headers=served.headers["runtime"]).json()
    assert status["audit"]["records"] == 0
