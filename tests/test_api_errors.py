"""Bad input: a clear 4xx with one body shape, nothing recorded, no 500, no hang."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import action


def records(client: TestClient) -> int:
    """Number of audit records the running app's log holds."""
    return int(client.get("/v1/status").json()["audit"]["records"])


def post_raw(client: TestClient, content: bytes) -> tuple[int, dict[str, object]]:
    """POST raw bytes to /v1/decide; return status and JSON body."""
    response = client.post(
        "/v1/decide", content=content, headers={"content-type": "application/json"}
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"kind": "agent_action", ', 400, "invalid_parameter"),
        (b"", 400, "invalid_parameter"),
        (b"NaN", 400, "invalid_parameter"),
        (b"[1, 2]", 422, "invalid_request"),
        (b'{"kind": "teleport", "subject": {"id": "spiffe://a/b"}}', 422, "invalid_request"),
        (b'{"subject": {"id": "spiffe://a/b"}, "action": "x"}', 422, "invalid_request"),
        (b'{"kind": "agent_action", "subject": {"id": "spiffe://a/b"}}', 422, "invalid_request"),
        (
            b'{"kind": "agent_action", "subject": {"id": 7}, "action": "x"}',
            422,
            "invalid_request",
        ),
        (
            b'{"kind": "agent_action", "subject": {"id": "not a uri"}, "action": "x"}',
            422,
            "invalid_request",
        ),
        (
            b'{"kind": "delegation", "subject": {"id": "spiffe://a/b"}, "delegatee": "spiffe://a/c",'
            b' "task": {"goal": "g"}, "ttl_seconds": -5}',
            422,
            "invalid_request",
        ),
        (
            b'{"kind": "agent_action", "subject": {"id": "spiffe://a/b"}, "action": "x",'
            b' "oops": 1}',
            422,
            "invalid_request",
        ),
        (
            b'{"kind": "agent_action", "subject": {"id": "spiffe://a/b"}, "action": "x",'
            b' "arguments": {"n": 123456789012345678901234567890}}',
            400,
            "invalid_parameter",
        ),
        (
            b'{"kind": "agent_action", "subject": {"id": "spiffe://a/b"}, "action": "x",'
            b' "arguments": {"q": "\\ud800"}}',
            400,
            "invalid_parameter",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx_and_records_nothing(
    client: TestClient, content: bytes, status: int, code: str
) -> None:
    """Malformed JSON, wrong types, unknown kind, missing or extra fields: 4xx, nothing audited."""
    got_status, body = post_raw(client, content)
    assert (got_status, body["code"]) == (status, code)
    assert isinstance(body["message"], str)
    assert body["message"]
    assert records(client) == 0


def test_validation_errors_point_at_the_field(client: TestClient) -> None:
    """Schema errors list each problem with a JSON-pointer-like location."""
    _, body = post_raw(client, b'{"kind": "agent_action", "subject": {"id": "spiffe://a/b"}}')
    assert {"code": "missing", "location": "/action"}.items() <= body["errors"][0].items()  # type: ignore[index]


def test_unknown_kind_is_named(client: TestClient) -> None:
    """An unknown kind says which kinds exist."""
    _, body = post_raw(client, b'{"kind": "teleport"}')
    assert "agent_action, data_movement, delegation" in str(body["message"])
    assert body["errors"] == [  # type: ignore[comparison-overlap]
        {"code": "unknown_kind", "message": "unknown or missing kind", "location": "/kind"}
    ]


def test_body_over_the_cap_is_413(client: TestClient) -> None:
    """A body larger than the cap is refused with 413 request_too_large."""
    big = action(arguments={"blob": "x" * 2_000_000})
    response = client.post("/v1/decide", json=big)
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert records(client) == 0


def test_chunked_body_over_the_cap_is_413(client: TestClient) -> None:
    """A body without Content-Length is counted while streaming and refused past the cap."""

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"kind": "agent_action", "arguments": {"blob": "'
        for _ in range(300):
            yield b"x" * 8192
        yield b'"}}'

    response = client.post(
        "/v1/decide", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert records(client) == 0


@pytest.mark.parametrize("depth", [40, 100_000])
def test_pathological_nesting_is_refused(client: TestClient, depth: int) -> None:
    """Deeply nested JSON is a 400 request_too_deep, however deep, and never a 500."""
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    content = (
        b'{"kind": "agent_action", "subject": {"id": "spiffe://a/b"}, "action": "x",'
        b' "arguments": ' + nested + b"}"
    )
    status, body = post_raw(client, content)
    assert (status, body["code"]) == (400, "request_too_deep")
    assert records(client) == 0


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    """404 and 405 answers carry the same {code, message} body."""
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["code"] == "resource_not_found"
    wrong = client.get("/v1/decide")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
