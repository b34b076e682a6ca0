"""Strict input over HTTP: what is decided and audited is exactly what was sent, or a 4xx.

Duplicate keys, numbers a double cannot hold, coerced types, bodies that are not JSON in UTF-8
and lone surrogates are each refused with a documented code, and nothing reaches the audit log.
The fast path and FastAPI's route answer these alike (tests/test_decide_fastpath.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maestro_gate.audit.sqlite import SqliteAuditLog
from maestro_gate.config import Settings
from maestro_gate.wiring import sqlite_path
from tests.conftest import action

JSON = {"content-type": "application/json"}
ACTION = json.dumps({k: v for k, v in action().items() if k != "context"}).encode()


def records(client: TestClient) -> int:
    """Number of audit records the running app's log holds."""
    return int(client.get("/v1/status").json()["audit"]["records"])


def post(client: TestClient, content: bytes, headers: dict[str, str] | None = None) -> Any:
    """POST raw bytes to /v1/decide, as JSON unless `headers` say otherwise."""
    return client.post("/v1/decide", content=content, headers=JSON if headers is None else headers)


def with_fields(**fields: str) -> bytes:
    """The action body with raw JSON text spliced in as extra top-level members."""
    extra = "".join(f', "{name}": {text}' for name, text in fields.items())
    return ACTION[:-1] + extra.encode() + b"}"


def refused(client: TestClient, response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a refusal in the error shape with nothing audited; return its body."""
    body: dict[str, Any] = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"code", "message", "errors"}
    assert records(client) == 0
    return body


@pytest.mark.parametrize(
    ("content", "location"),
    [
        (ACTION[:-1] + b', "action": "shell.exec"}', "/action"),
        (
            b'{"kind": "agent_action", "subject": {"id": "spiffe://corp.example/agent/o"},'
            b' "subject": {"id": "spiffe://corp.example/agent/analyst"}, "action": "x"}',
            "/subject",
        ),
        (with_fields(arguments='{"a": {"b": [1, {"c": 1, "c": 1}]}}'), "/arguments/a/b/1/c"),
        (with_fields(arguments='{"a/b~": 1, "a/b~": 2}'), "/arguments/a~1b~0"),
        (with_fields(arguments='{"\\ud800": 1, "\\ud800": 2}'), "/arguments/\\ud800"),
        (with_fields(target='{"type": "t", "id": "i", "id": "i"}'), "/target/id"),
    ],
    ids=[
        "top level",
        "subject",
        "deep in arguments",
        "escaped pointer",
        "surrogate key",
        "same value twice",
    ],
)
def test_a_duplicate_key_at_any_depth_is_400_naming_its_path(
    client: TestClient, content: bytes, location: str
) -> None:
    """A key repeated in any object is 400 `duplicate_key`, its JSON pointer in `errors`."""
    body = refused(client, post(client, content), 400, "duplicate_key")
    assert body["errors"] == [
        {"code": "duplicate_key", "message": "duplicate key", "location": location}
    ]


@pytest.mark.parametrize(
    "number",
    ["1e400", "-1e400", "1.8e308", "NaN", "Infinity", "-Infinity", "9007199254740992",
     "-9007199254740992", "123456789012345678901234567890"],
)  # fmt: skip
def test_a_number_the_log_cannot_record_exactly_is_400(client: TestClient, number: str) -> None:
    """Overflowing floats, NaN/Infinity and integers past 2**53 - 1 are 400, never `null`."""
    refused(client, post(client, with_fields(arguments=f'{{"n": {number}}}')), 400,
            "invalid_parameter")  # fmt: skip


def test_accepted_values_are_audited_exactly_as_sent(
    client: TestClient, settings: Settings
) -> None:
    """Edge numbers, escapes and a timestamp reach the record unchanged."""
    arguments = (
        '{"max": 9007199254740991, "min": -9007199254740991, "big": 1e308, "tiny": 5e-324,'
        ' "text": "caf\\u00e9 \\ud83d\\ude00", "nothing": null, "nested": [true, {"x": "3"}]}'
    )
    content = with_fields(
        arguments=arguments,
        context='{"trace_id": "t", "timestamp": "2025-01-31T09:30:00.5+02:00"}',
    )
    response = post(client, content)
    assert response.status_code == 200, response.text
    [row] = list(SqliteAuditLog(sqlite_path(settings.audit_dsn)).rows())
    audited = json.loads(row.record)["input"]
    assert audited["arguments"] == json.loads(arguments)
    assert audited["context"]["timestamp"] == "2025-01-31T09:30:00.5+02:00"


STRICT_FIELDS = [
    ("reflection_depth true", {"context": {"reflection_depth": True}}, "/context/reflection_depth"),
    ("reflection_depth text", {"context": {"reflection_depth": "3"}}, "/context/reflection_depth"),
    ("reflection_depth 3.5", {"context": {"reflection_depth": 3.5}}, "/context/reflection_depth"),
    ("reversible text", {"reversible": "false"}, "/reversible"),
    ("reversible 0", {"reversible": 0}, "/reversible"),
    ("timestamp number", {"context": {"timestamp": 0}}, "/context/timestamp"),
    ("timestamp not RFC 3339", {"context": {"timestamp": "2025-01-31 09:30"}},
     "/context/timestamp"),
    ("sandbox 1", {"execution": {"sandbox": 1}}, "/execution/sandbox"),
    ("action number", {"action": 7}, "/action"),
    ("side_effects text", {"side_effects": "db"}, "/side_effects"),
    ("location number", {"execution": {"location": 1}}, "/execution/location"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "location"), [c[1:] for c in STRICT_FIELDS], ids=[c[0] for c in STRICT_FIELDS]
)
def test_typed_fields_take_only_their_own_json_type(
    client: TestClient, extra: dict[str, Any], location: str
) -> None:
    """No coercion from strings, numbers or booleans: 422 naming the field."""
    body = refused(client, client.post("/v1/decide", json=action(**extra)), 422, "invalid_request")
    assert [e["location"] for e in body["errors"]] == [location]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (
            {"kind": "delegation", "subject": {"id": "spiffe://a/b"}, "delegatee": "spiffe://a/c",
             "task": {"goal": "g"}, "ttl_seconds": "300"},
            "/ttl_seconds",
        ),
        (
            {"kind": "data_movement", "subject": {"id": "spiffe://a/b"},
             "data": {"classification": "internal", "contains_pii": "no"},
             "source": {"type": "store", "id": "s"}, "destination": {"type": "agent", "id": "d"},
             "operation": "read"},
            "/data/contains_pii",
        ),
    ],
    ids=["delegation ttl text", "data contains_pii text"],
)  # fmt: skip
def test_other_kinds_are_strict_too(
    client: TestClient, body: dict[str, Any], location: str
) -> None:
    """Delegations and data movements refuse coerced values alike."""
    answer = refused(client, client.post("/v1/decide", json=body), 422, "invalid_request")
    assert [e["location"] for e in answer["errors"]] == [location]


def test_free_form_objects_stay_free(client: TestClient) -> None:
    """`arguments` and `context.attributes` take any JSON value, uncoerced."""
    body = action(arguments={"n": "3", "b": 0, "x": [None, 1.5]}, context={"attributes": {"t": 1}})
    assert client.post("/v1/decide", json=body).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/xml", "text/json", "application/json; charset=utf-16", "application/jsonx"],
)  # fmt: skip
def test_a_body_not_declared_as_json_is_415(client: TestClient, content_type: str | None) -> None:
    """Only `application/json` and `application/*+json`, in UTF-8, are read; else 415."""
    headers = {} if content_type is None else {"content-type": content_type}
    refused(client, post(client, ACTION, headers), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
     "application/vnd.maestro+json"],
)  # fmt: skip
def test_json_media_types_are_decided(client: TestClient, content_type: str) -> None:
    """The JSON media types, with or without a UTF-8 charset, are decided."""
    assert post(client, ACTION, {"content-type": content_type}).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        ACTION.decode().encode("utf-16"),
        ACTION.decode().encode("utf-32-le"),
        b"\xef\xbb\xbf" + ACTION,
        ACTION.replace(b"web.search", b"web.\xff"),
        ACTION.replace(b"web.search", b"web.\xed\xa0\x80"),
    ],
    ids=["UTF-16", "UTF-32", "UTF-8 BOM", "invalid byte", "encoded surrogate"],
)
def test_the_body_must_be_plain_utf8(client: TestClient, content: bytes) -> None:
    """A body in another encoding, with a BOM or with bytes that are not UTF-8 is 400."""
    refused(client, post(client, content), 400, "invalid_parameter")


@pytest.mark.parametrize(
    ("content", "location"),
    [
        (ACTION.replace(b"web.search", b"\\ud800"), "/action"),
        (ACTION.replace(b"web.search", b"x\\uDFFFx"), "/action"),
        (with_fields(arguments='{"q": ["ok", "\\udc00\\ud800"]}'), "/arguments/q/1"),
        (with_fields(arguments='{"\\ud800": 1}'), "/arguments/\\ud800"),
    ],
    ids=["typed field", "low surrogate", "reversed pair in arguments", "in a key"],
)
def test_a_lone_surrogate_is_400_not_422(client: TestClient, content: bytes, location: str) -> None:
    """An unpaired `\\uD800`-`\\uDFFF` escape anywhere is 400: the log cannot record it."""
    body = refused(client, post(client, content), 400, "invalid_parameter")
    assert body["errors"][0]["location"] == location


def test_an_escaped_surrogate_pair_is_one_character(client: TestClient) -> None:
    """A well-formed pair (`\\ud83d\\ude00`) is a character like any other."""
    assert post(client, with_fields(arguments='{"q": "\\ud83d\\ude00"}')).status_code == 200
