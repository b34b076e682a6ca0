"""What both clients share, free of I/O: the request bytes, reading answers, when to retry.

Reading an answer fails closed: only a 200 whose body is a `DecisionResponse` (the service's own
model, validated as strictly as the server built it) is a decision. Anything else raises a
`GateClientError` (see client/exceptions.py);
nothing here can produce an allow the gate did not send.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from maestro_gate.client.exceptions import (
    ERROR_CODES,
    CallerOverloaded,
    GateClientError,
    GateRefused,
    GateServerError,
    GateTimeout,
    GateUnreachable,
    MalformedAnswer,
    ServiceUnavailable,
)
from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.requests import REQUEST_ADAPTER, AnyRequest

DECIDE = "/v1/decide"
APPROVAL_STATUSES = frozenset({"pending", "granted", "rejected", "expired", "used", "mismatch"})
RETRIED_STATUSES = frozenset({502, 503, 504})
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""A bigger answer is not the gate's: refused as malformed, and never read further."""

Token = str | Callable[[], str]
"""A bearer token, or a function returning the current one (called for every request)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a call is tried again, and how long it waits in between.

    Only what is safe is retried: a decide always carries a `request_id` (the client sets one),
    so a retry is the same request, which the gate answers with the decision it recorded. Retried:
    no connection, no answer in time, 502/503/504 and 429 (after its `Retry-After`, if it fits
    in the call's timeout). Never retried: any other 4xx, a malformed answer.
    """

    attempts: int = 3
    backoff_s: float = 0.05
    max_backoff_s: float = 1.0

    def delay(self, error: GateClientError, attempt: int, remaining_s: float) -> float | None:
        """Seconds to wait before try `attempt + 1` after `error`, or None: give up."""
        if attempt >= self.attempts or not retryable(error):
            return None
        wait = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        if isinstance(error, CallerOverloaded) and error.retry_after_s is not None:
            wait = max(wait, error.retry_after_s)
        return wait if wait < remaining_s else None


NO_RETRY = Retry(attempts=1)


def retryable(error: GateClientError) -> bool:
    """Whether a call that failed with `error` may be tried again with the same request."""
    if isinstance(error, (GateUnreachable, GateTimeout, CallerOverloaded, ServiceUnavailable)):
        return True
    return isinstance(error, GateServerError) and error.status in RETRIED_STATUSES


def with_request_id(request: AnyRequest | Mapping[str, Any]) -> AnyRequest:
    """`request` as a request model, validated, with a `request_id` (a new UUID if it had none)."""
    model = (
        request if not isinstance(request, Mapping) else REQUEST_ADAPTER.validate_python(request)
    )
    if model.request_id is None:
        model = model.model_copy(update={"request_id": str(uuid.uuid4())})
    return model


def body_of(request: AnyRequest) -> bytes:
    """The JSON body of `POST /v1/decide` for `request`."""
    return request.model_dump_json(exclude_none=True).encode()


def headers_for(api_key: str | None, token: Token | None) -> dict[str, str]:
    """The credential header of one request: `X-API-Key`, or `Authorization: Bearer`."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    if token is not None:
        headers["Authorization"] = f"Bearer {token() if callable(token) else token}"
    return headers


def transport_error(exc: httpx.HTTPError) -> GateClientError:
    """The client error for an httpx failure: a timeout, or the gate out of reach."""
    if isinstance(exc, httpx.TimeoutException):
        return GateTimeout(f"the gate did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return GateUnreachable(f"the gate could not be reached: {type(exc).__name__}: {exc}")
    return GateUnreachable(f"HTTP failure: {type(exc).__name__}: {exc}")


def received(response: httpx.Response, body: bytes) -> httpx.Response:
    """A streamed answer's status and headers with the `body` read from it."""
    return httpx.Response(response.status_code, headers=response.headers, content=body)


def check_progress(read: int, deadline: float, now: float) -> None:
    """Stop reading an answer past the call's deadline or past MAX_ANSWER_BYTES.

    httpx's timeouts bound each read, not the whole answer: a server dripping a byte at a time
    would hold the call for ever without this check between chunks.
    """
    if now > deadline:
        raise GateTimeout("the gate's answer did not arrive within the call's timeout")
    if read > MAX_ANSWER_BYTES:
        raise MalformedAnswer(f"the gate's answer is larger than {MAX_ANSWER_BYTES} bytes")


def decision_of(response: httpx.Response) -> DecisionResponse:
    """The decision in a `/v1/decide` answer; anything but a well-formed 200 raises."""
    if response.status_code != 200:
        raise error_of(response)
    try:
        decision = DecisionResponse.model_validate_json(response.content)
    except ValidationError as exc:
        raise MalformedAnswer(
            f"the gate's answer is not a decision: {exc.error_count()} error(s), first: "
            f"{_first_error(exc)}"
        ) from None
    if decision.decision == "require_hitl" and decision.approval is None:
        raise MalformedAnswer("the gate asked for a human approval without an approval ticket")
    return decision


def approval_of(response: httpx.Response) -> dict[str, Any]:
    """The approval in a `GET /v1/approvals/{id}` answer; anything but a well-formed 200 raises."""
    if response.status_code != 200:
        raise error_of(response)
    body = _json(response)
    if not isinstance(body, dict) or body.get("status") not in APPROVAL_STATUSES:
        raise MalformedAnswer("the gate's answer is not an approval with a known status")
    if not isinstance(body.get("id"), str):
        raise MalformedAnswer("the gate's approval has no id")
    return body


def error_of(response: httpx.Response) -> GateClientError:
    """The typed error for a non-200 answer, by its documented `code`, else by its status."""
    status = response.status_code
    try:
        body = _json(response)
    except MalformedAnswer:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    text = message if isinstance(message, str) else f"HTTP {status}"
    cls = ERROR_CODES.get(code) if isinstance(code, str) else None
    if cls is None:
        if status >= 500 or status < 400:
            return GateServerError(f"HTTP {status} from the gate: {text}", status=status)
        cls = GateRefused
    errors = body.get("errors") if isinstance(body, dict) else None
    return cls(
        text,
        code=code if isinstance(code, str) else f"http_{status}",
        status=status,
        errors=errors if isinstance(errors, list) else None,
        retry_after_s=_retry_after(response),
    )


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise MalformedAnswer(
            f"the gate's answer (HTTP {response.status_code}) is not JSON"
        ) from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_input=False)[0]
    location = "/".join(str(p) for p in first.get("loc", ()))
    return f"{location}: {first.get('msg', '')}"
