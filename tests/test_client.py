"""The Python client against a real gate on loopback and against servers that misbehave.

Fail closed: an unreachable gate, a timeout, a 5xx, a malformed answer and an unknown decision
value all raise; none of them can come back as a decision.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from maestro_gate.client import AsyncGateClient, GateClient, Retry
from maestro_gate.client import exceptions as client_errors
from maestro_gate.core.decision.requests import AgentAction
from tests.auth_support import ANALYST, CODER, act
from tests.client_support import (
    Answer,
    Misbehaving,
    Respond,
    decision_body,
    misbehaving,
    real_gate,
    self_signed,
)

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"
QUICK = Retry(attempts=3, backoff_s=0.01)


def raised_by(
    respond: Respond, request: dict[str, Any] | None = None, **client: Any
) -> tuple[client_errors.GateClientError, Misbehaving]:
    """What `GateClient.decide` raises against a server answering as `respond` says."""
    client.setdefault("retry", QUICK)
    with misbehaving(respond) as server, GateClient(server.url, **client) as gate:
        try:
            gate.decide(request or act())
        except client_errors.GateClientError as exc:
            return exc, server
    raise AssertionError("the client returned a decision")


def test_decides_allow_deny_and_hitl_against_the_real_gate(tmp_path: Path) -> None:
    """An API key client gets each of the three decisions, with reasons and the approval ticket."""
    with real_gate(tmp_path) as gate, GateClient(gate.url, api_key=gate.keys["runtime"]) as client:
        allowed = client.decide(act("web.search"))
        denied = client.decide(act("shell.exec"))
        hitl = client.decide(act("payments.refund"))
    assert allowed.decision == "allow"
    assert (denied.decision, [r.rule for r in denied.reasons]) == (
        "deny",
        ["L3.tool_not_allowlisted"],
    )
    assert hitl.decision == "require_hitl"
    assert hitl.approval is not None
    assert hitl.approval.approvers_required == 1


def test_takes_a_request_model_and_a_bearer_token(tmp_path: Path) -> None:
    """A request model is sent as is; an API key presented as a bearer token authenticates."""
    request = AgentAction.model_validate(act("web.search"))
    with real_gate(tmp_path) as gate, GateClient(gate.url, token=lambda: gate.keys["runtime"]) as c:
        assert c.decide(request).decision == "allow"


def test_async_client_decides_against_the_real_gate(tmp_path: Path) -> None:
    """AsyncGateClient gets the same decisions, concurrently over one pool."""

    async def main(url: str, key: str) -> list[str]:
        async with AsyncGateClient(url, api_key=key) as client:
            results: list[str] = []

            async def one(tool: str) -> None:
                results.append((await client.decide(act(tool))).decision)

            async with anyio.create_task_group() as group:
                for tool in ["web.search", "shell.exec"] * 5:
                    group.start_soon(one, tool)
            return results

    # Ten decisions at once on a freshly started gate: a deadline that the loaded CI machine
    # cannot miss (at the default, all ten once failed closed as GATE.engine_timeout).
    with real_gate(tmp_path, decision_timeout_ms=5000) as gate:
        decided = anyio.run(main, gate.url, gate.keys["runtime"])
    assert sorted(decided) == ["allow"] * 5 + ["deny"] * 5


def test_refusals_of_the_real_gate_raise_typed_errors(tmp_path: Path) -> None:
    """No credential is Unauthorized; another agent's subject is Forbidden subject_not_bound."""
    with real_gate(tmp_path) as gate:
        with GateClient(gate.url) as anonymous, pytest.raises(client_errors.Unauthorized) as no_key:
            anonymous.decide(act())
        with (
            GateClient(gate.url, api_key=gate.keys["runtime"]) as runtime,
            pytest.raises(client_errors.Forbidden) as unbound,
        ):
            runtime.decide(act(subject=CODER))
    assert (no_key.value.status, no_key.value.code) == (401, "unauthorized")
    assert (unbound.value.status, unbound.value.code) == (403, "subject_not_bound")


def test_a_request_that_is_not_valid_is_refused_before_sending() -> None:
    """A dict that is not a request is refused by the shared model, before any I/O."""
    with GateClient("http://127.0.0.1:9") as client, pytest.raises(ValueError, match="kind"):
        client.decide({"kind": "agent_action", "subject": {"id": ANALYST}})


def test_an_unreachable_gate_raises_after_retrying() -> None:
    """Nothing listens: GateUnreachable, after the retries, within the call's timeout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        GateClient(f"http://127.0.0.1:{port}", retry=QUICK) as client,
        pytest.raises(client_errors.GateUnreachable),
    ):
        client.decide(act())


def test_tls_is_verified_and_a_failed_handshake_is_unreachable(tmp_path: Path) -> None:
    """Over TLS: a client trusting the gate's CA decides; one that does not cannot reach it."""
    server_tls, trusting = self_signed(tmp_path)
    with misbehaving(lambda *_: Answer.json(200, decision_body()), tls=server_tls) as gate:
        with GateClient(gate.url, verify=trusting) as client:
            assert client.decide(act()).decision == "allow"
        untrusting = GateClient(gate.url, retry=Retry(attempts=1))
        with untrusting, pytest.raises(client_errors.GateUnreachable):
            untrusting.decide(act())


def test_a_slow_gate_times_out_within_the_calls_timeout() -> None:
    """An answer slower than the per-call timeout raises GateTimeout, on time."""
    slow = replace(Answer.json(200, decision_body()), delay_s=2.0)
    started = time.monotonic()
    raised, _ = raised_by(lambda *_: slow, timeout_s=0.3)
    assert isinstance(raised, client_errors.GateTimeout)
    assert time.monotonic() - started < 1.5


def test_an_answer_dripped_a_byte_at_a_time_still_times_out_on_time() -> None:
    """Each read is quick but the answer never ends in time: GateTimeout within the timeout."""
    drip = replace(Answer.json(200, decision_body()), drip_s=0.05)
    with misbehaving(lambda *_: drip) as slow, GateClient(slow.url, retry=Retry(attempts=1)) as c:
        started = time.monotonic()
        with pytest.raises(client_errors.GateTimeout):
            c.decide(act(), timeout_s=0.5)
        took = time.monotonic() - started
    assert took < 3.0  # the dripped answer takes tens of seconds; 3 s absorbs a loaded CI


def test_async_client_times_out_a_dripped_answer_on_time() -> None:
    """The async client bounds the whole answer too."""
    drip = replace(Answer.json(200, decision_body()), drip_s=0.05)

    async def main(url: str) -> BaseException | None:
        async with AsyncGateClient(url, timeout_s=0.5, retry=Retry(attempts=1)) as client:
            try:
                await client.decide(act())
            except client_errors.GateClientError as exc:
                return exc
        return None

    with misbehaving(lambda *_: drip) as slow:
        started = time.monotonic()
        raised = anyio.run(main, slow.url)
    assert isinstance(raised, client_errors.GateTimeout)
    assert time.monotonic() - started < 3.0  # as above: bounded by the call, not the drip


def test_an_answer_larger_than_any_decision_is_refused() -> None:
    """A body past MAX_ANSWER_BYTES is MalformedAnswer, not read to the end."""
    from maestro_gate.client.wire import MAX_ANSWER_BYTES

    huge = Answer(200, b" " * (MAX_ANSWER_BYTES + 100_000), {"Content-Type": "application/json"})
    raised, _ = raised_by(lambda *_: huge, retry=Retry(attempts=1))
    assert isinstance(raised, client_errors.MalformedAnswer)


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (Answer(500, b"Internal Server Error"), client_errors.GateServerError),
        (
            Answer.json(500, {"code": "internal_error", "message": "x"}),
            client_errors.GateServerError,
        ),
        (Answer(502, b"<html>bad gateway</html>"), client_errors.GateServerError),
        (Answer(200, b"{not json"), client_errors.MalformedAnswer),
        (Answer(200, b""), client_errors.MalformedAnswer),
        (Answer.json(200, decision_body("ALLOW")), client_errors.MalformedAnswer),
        (Answer.json(200, decision_body("permit")), client_errors.MalformedAnswer),
        (Answer.json(200, decision_body(True)), client_errors.MalformedAnswer),
        (Answer.json(200, {"decision": "allow"}), client_errors.MalformedAnswer),
        (Answer.json(200, decision_body(extra="x")), client_errors.MalformedAnswer),
        (Answer.json(200, decision_body("require_hitl")), client_errors.MalformedAnswer),
        (Answer.json(200, [decision_body()]), client_errors.MalformedAnswer),
        (Answer(204), client_errors.GateUnavailable),
        (Answer.json(302, decision_body(), Location="/v1/decide"), client_errors.GateUnavailable),
    ],
)
def test_misbehaving_gate_raises_and_never_allows(answer: Answer, raised: type[Exception]) -> None:
    """A 5xx, a body that is not a decision or an unknown decision value raise GateUnavailable."""
    error, _ = raised_by(lambda *_: answer)
    assert isinstance(error, raised)
    assert isinstance(error, client_errors.GateUnavailable)


def test_async_client_fails_closed_the_same_way() -> None:
    """The async client raises on an unknown decision value and on a 500, like the sync one."""

    async def main(url: str) -> list[type[BaseException]]:
        raised: list[type[BaseException]] = []
        async with AsyncGateClient(url, retry=QUICK) as client:
            for _ in range(2):
                try:
                    await client.decide(act())
                except client_errors.GateClientError as exc:
                    raised.append(type(exc))
        return raised

    answers = iter(
        [Answer.json(200, decision_body("maybe")), Answer(500, b"boom")] + [Answer(500)] * 4
    )
    with misbehaving(lambda *_: next(answers)) as bad:
        raised = anyio.run(main, bad.url)
    assert raised == [client_errors.MalformedAnswer, client_errors.GateServerError]


def test_a_retry_resends_the_same_request_id() -> None:
    """503 then a decision: the retry carries the request_id of the first try, byte for byte."""
    answers = iter([Answer.json(503, {"code": "audit_unavailable", "message": "x"}), Answer(502)])

    def respond(*_: Any) -> Answer:
        return next(answers, Answer.json(200, decision_body()))

    with misbehaving(respond) as flaky, GateClient(flaky.url, retry=QUICK) as client:
        decided = client.decide(act())
    bodies = [body for _, _, body, _ in flaky.received]
    ids = {json.loads(body)["request_id"] for body in bodies}
    assert (decided.decision, len(bodies), len(ids)) == ("allow", 3, 1)
    assert len(set(bodies)) == 1


def test_calls_share_pooled_connections() -> None:
    """Ten decisions in a row travel over one kept-alive connection; the key goes with each."""
    answer = Answer.json(200, decision_body())
    with misbehaving(lambda *_: answer) as gate, GateClient(gate.url, api_key="k-1") as client:
        for _ in range(10):
            client.decide(act())
    assert len(gate.peers) == 10
    assert len(set(gate.peers)) == 1
    assert {headers.get("X-API-Key") for _, _, _, headers in gate.received} == {"k-1"}


def test_a_caller_set_request_id_is_kept() -> None:
    """The client sets a request_id only when the caller did not."""
    with (
        misbehaving(lambda *_: Answer.json(200, decision_body())) as gate,
        GateClient(gate.url) as c,
    ):
        c.decide(act(request_id="mine-1"))
    [(_, _, body, _)] = gate.received
    assert json.loads(body)["request_id"] == "mine-1"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_a_refusal_is_not_retried(status: int) -> None:
    """A 4xx other than 429 is final: one request."""
    error, server = raised_by(lambda *_: Answer.json(status, {"code": "x", "message": "no"}))
    assert isinstance(error, client_errors.GateRefused)
    assert len(server.received) == 1


def test_caller_overloaded_waits_for_retry_after_within_the_timeout() -> None:
    """429 with Retry-After longer than the time left is raised at once, with retry_after_s."""
    body = {"code": "caller_overloaded", "message": "busy"}
    error, server = raised_by(
        lambda *_: Answer.json(429, body, **{"Retry-After": "5"}), timeout_s=1
    )
    assert isinstance(error, client_errors.CallerOverloaded)
    assert (error.retry_after_s, len(server.received)) == (5.0, 1)


def documented_codes() -> set[tuple[int, str]]:
    """Every (status, code) the OpenAPI snapshot documents."""
    document = json.loads(SNAPSHOT.read_text())
    found: set[tuple[int, str]] = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                listed = re.search(r"\(code: ([^)]*)\)", response.get("description", ""))
                for code in listed.group(1).split(", ") if listed else []:
                    found.add((int(status), code))
    return found


DOCUMENTED = sorted(documented_codes())


def test_every_documented_code_has_a_typed_error() -> None:
    """The client's table names every error code the API documents (and no code twice)."""
    assert {code for _, code in DOCUMENTED} <= set(client_errors.ERROR_CODES)


@pytest.mark.parametrize(("status", "code"), DOCUMENTED)
def test_each_documented_error_raises_its_class(status: int, code: str) -> None:
    """An answer with a documented code raises the class for it, with status, code and message."""
    answer = Answer.json(status, {"code": code, "message": f"about {code}"})
    error, _ = raised_by(lambda *_: answer, retry=Retry(attempts=1))
    assert isinstance(error, client_errors.ERROR_CODES[code])
    assert isinstance(error, client_errors.GateRefused)
    assert (error.status, error.code, error.message) == (
        status,
        code,
        f"about {code}",
    )


def test_the_client_imports_no_server_dependency() -> None:
    """Importing the client loads neither the web framework, the engine nor a database driver."""
    probe = (
        "import sys, maestro_gate.client, maestro_gate.client.exceptions;"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    heavy = {
        "fastapi",
        "starlette",
        "uvicorn",
        "regopy",
        "psycopg",
        "redis",
        "prometheus_client",
        "opa_client",
        "aiohttp",
    }
    assert loaded.isdisjoint(heavy)
    assert not {
        m
        for m in loaded
        if m.startswith(("maestro_gate.api", "maestro_gate.wiring", "maestro_gate.audit"))
    }


def idempotent_retries_landed(tmp_path: Path) -> bool:
    """Whether the gate answers a repeated request_id with the decision it recorded."""
    with real_gate(tmp_path) as gate, GateClient(gate.url, api_key=gate.keys["runtime"]) as client:
        first = client.decide(act(request_id="probe-1"))
        again = client.decide(act(request_id="probe-1"))
    return first.decision_id == again.decision_id


def test_a_retry_after_a_lost_answer_gets_the_recorded_decision(tmp_path: Path) -> None:
    """The gate's answer is lost on the way: the retry gets that decision, audited once."""
    import httpx

    lost: list[str] = []
    with real_gate(tmp_path) as gate:

        def forward(method: str, path: str, body: bytes) -> Answer:
            key = {"X-API-Key": gate.keys["runtime"], "Content-Type": "application/json"}
            upstream = httpx.request(method, gate.url + path, content=body, headers=key)
            if not lost:
                lost.append(upstream.json()["decision_id"])
                return Answer(drop=True)
            return Answer(
                upstream.status_code, upstream.content, {"Content-Type": "application/json"}
            )

        with misbehaving(forward) as proxy, GateClient(proxy.url, retry=QUICK) as client:
            decided = client.decide(act("web.search", request_id="retry-1"))
        from tests.auth_support import records

        recorded = [
            r
            for r in records(gate.settings)
            if r["type"] == "decision" and r["input"].get("request_id") == "retry-1"
        ]
    assert decided.decision_id == lost[0]
    assert [r["decision_id"] for r in recorded] == lost


def test_a_request_id_reused_for_another_request_is_a_conflict(tmp_path: Path) -> None:
    """The same request_id with other arguments never gets the earlier answer: 409 Conflict."""
    with real_gate(tmp_path) as gate, GateClient(gate.url, api_key=gate.keys["runtime"]) as client:
        first = client.decide(act("web.search", request_id="same-1"))
        again = client.decide(act("web.search", request_id="same-1"))
        with pytest.raises(client_errors.Conflict) as reused:
            client.decide(act("shell.exec", request_id="same-1"))
    assert (first.decision, again.decision_id) == ("allow", first.decision_id)
    assert (reused.value.status, reused.value.code) == (409, "request_id_reused")
