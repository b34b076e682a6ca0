"""The guard against the real gate on loopback: runs only on allow, waits for humans, fails closed.

The gate is tests/auth_support.py's: it denies shell.exec, asks one approver for payments.refund
and two for irreversible actions, and sets an `L5.state_echo` obligation on every decision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from maestro_gate.client import AsyncGateClient, GateClient, Retry
from maestro_gate.client import exceptions as client_errors
from maestro_gate.client.approval import HitlPolicy, resubmission
from maestro_gate.client.context import GateContext, acting_as, current
from maestro_gate.client.guard import (
    ApprovalPending,
    PendingApproval,
    current_decision,
    delegation,
    guard,
    movement,
)
from maestro_gate.core.decision.decisions import DecisionResponse, Obligation
from maestro_gate.core.decision.requests import Data, Endpoint, Resource
from tests.auth_support import ANALYST, CODER, records
from tests.client_support import Gate, real_gate

FAST = HitlPolicy(deadline_s=20, first_poll_s=0.02, max_poll_s=0.2)
Handed = list[tuple[list[Obligation], DecisionResponse]]


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The real gate on loopback."""
    with real_gate(tmp_path, approval_ttl_s=600) as served:
        yield served


@pytest.fixture
def client(gate: Gate) -> Iterator[GateClient]:
    """A client with the runtime agent's key (bound to the analyst)."""
    with GateClient(gate.url, api_key=gate.keys["runtime"]) as runtime:
        yield runtime


def vote(gate: Gate, approval_id: str, who: str = "alice", verdict: str = "approve") -> None:
    """An approver's vote over HTTP."""
    response = httpx.post(
        f"{gate.url}/v1/approvals/{approval_id}/{verdict}", headers={"X-API-Key": gate.keys[who]}
    )
    assert response.status_code == 200, response.text


def decisions(gate: Gate) -> list[dict[str, Any]]:
    """The audited decision records, in order."""
    return [r for r in records(gate.settings) if r["type"] == "decision"]


def test_an_allowed_call_runs_with_its_bound_arguments_and_hands_over_obligations(
    gate: Gate, client: GateClient
) -> None:
    """Allow: the function runs; the request names the tool, its arguments with defaults, the
    declared target and context; the obligations go to the handler before the call."""
    handed: Handed = []
    ran: list[str] = []

    @guard(
        client,
        target=lambda args: Resource(type="store", id=args["store"]),
        side_effects=["network"],
        on_obligations=lambda obligations, decision: handed.append((obligations, decision)),
    )
    def search(query: str, store: str, limit: int = 5) -> str:
        ran.append(current_decision().decision_id)
        return f"results for {query}"

    with acting_as(ANALYST, session_id="s-7", trace_id="t-1", goal="research"):
        assert search("mcp", store="docs") == "results for mcp"
    [record] = decisions(gate)
    sent = record["input"]
    assert (sent["action"], sent["arguments"]) == (
        "search",
        {"query": "mcp", "store": "docs", "limit": 5},
    )
    assert sent["target"] == {"type": "store", "id": "docs"}
    assert (sent["side_effects"], sent["subject"]["session_id"]) == (["network"], "s-7")
    assert (sent["context"]["trace_id"], sent["context"]["goal"]) == ("t-1", "research")
    [(obligations, decision)] = handed
    assert [o.rule for o in obligations] == ["L5.state_echo"]
    assert ran == [decision.decision_id] == [record["decision_id"]]


def test_a_denied_call_does_not_run_and_raises_the_reasons(client: GateClient) -> None:
    """Deny: ActionDenied with the gate's reasons; the function body never runs."""
    ran: list[bool] = []

    @guard(client, action="shell.exec", on_obligations=lambda *_: None)
    def shell(command: str) -> None:
        ran.append(True)

    with acting_as(ANALYST), pytest.raises(client_errors.ActionDenied) as denied:
        shell("rm -rf /")
    assert [r.rule for r in denied.value.reasons] == ["L3.tool_not_allowlisted"]
    assert "L3.tool_not_allowlisted" in str(denied.value)
    assert ran == []


def test_obligations_without_a_handler_stop_the_call(client: GateClient) -> None:
    """Obligations are never dropped: with no handler the allowed call does not run."""
    ran: list[bool] = []

    @guard(client)
    def lookup() -> None:
        ran.append(True)

    with acting_as(ANALYST), pytest.raises(client_errors.ObligationsUnhandled) as raised:
        lookup()
    assert [r.rule for r in raised.value.reasons] == ["L5.state_echo"]
    assert ran == []


def test_hitl_waits_for_the_approval_then_runs_once(gate: Gate, client: GateClient) -> None:
    """require_hitl: the guard polls, an approver grants, the same request is re-submitted with
    the approval, and the call runs once; the approval is then used."""
    ran: list[int] = []

    @guard(client, action="payments.refund", hitl=FAST, on_obligations=lambda *_: None)
    def refund(amount: int) -> str:
        ran.append(amount)
        return "refunded"

    def approve_when_pending() -> None:
        for _ in range(500):
            pending = httpx.get(
                f"{gate.url}/v1/approvals?status=pending",
                headers={"X-API-Key": gate.keys["auditor"]},
            ).json()["approvals"]
            if pending:
                vote(gate, pending[0]["id"])
                return
            time.sleep(0.02)

    approver = threading.Thread(target=approve_when_pending)
    approver.start()
    with acting_as(ANALYST, session_id="s-1"):
        assert refund(40) == "refunded"
    approver.join()
    asked, allowed = decisions(gate)
    assert (asked["decision"], allowed["decision"], ran) == ("require_hitl", "allow", [40])
    assert allowed["approval"]["event"] == "used"
    assert allowed["input"]["arguments"] == asked["input"]["arguments"] == {"amount": 40}


def test_pending_returns_at_once_and_an_approval_never_covers_another_call(
    gate: Gate, client: GateClient
) -> None:
    """`pending`: a PendingApproval at once; its approval does not cover a call with other
    arguments; resume runs the approved call once, a second resume is refused."""
    ran: list[int] = []
    pending_policy = HitlPolicy(on_hitl="pending", deadline_s=10, first_poll_s=0.02)

    @guard(client, action="payments.refund", hitl=pending_policy, on_obligations=lambda *_: None)
    def refund(amount: int) -> str:
        ran.append(amount)
        return "refunded"

    with acting_as(ANALYST, session_id="s-1"):
        small = refund(5)
        large = refund(5000)
    assert isinstance(small, PendingApproval)
    assert isinstance(large, PendingApproval)
    assert small.approval_id != large.approval_id
    assert ran == []
    vote(gate, small.approval_id)
    borrowed = client.decide(resubmission(large.request, small.approval_id))
    assert (borrowed.decision, ran) == ("deny", [])
    assert small.resume() == "refunded"
    assert ran == [5]
    with pytest.raises(client_errors.ApprovalRefused, match="used"):
        small.resume()
    assert ran == [5]


def test_a_rejected_approval_raises_and_the_call_does_not_run(
    gate: Gate, client: GateClient
) -> None:
    """A rejection ends the wait with ApprovalRefused."""
    pending_policy = HitlPolicy(on_hitl="pending")
    with (
        acting_as(ANALYST),
        pytest.raises(ApprovalPending) as raised,
        guard(client, action="payments.refund", hitl=pending_policy),
    ):
        pytest.fail("the block ran without an approval")
    pending = raised.value.pending
    vote(gate, pending.approval_id, verdict="reject")
    with pytest.raises(client_errors.ApprovalRefused, match="rejected"):
        pending.resume()


def test_no_approver_in_time_raises_approval_timeout(client: GateClient) -> None:
    """Past the guard's deadline with the approval still pending: ApprovalTimeout, no call."""
    ran: list[bool] = []
    short = HitlPolicy(deadline_s=0.3, first_poll_s=0.05, max_poll_s=0.1)

    @guard(client, action="payments.refund", hitl=short, on_obligations=lambda *_: None)
    def refund() -> None:
        ran.append(True)

    started = time.monotonic()
    with acting_as(ANALYST), pytest.raises(client_errors.ApprovalTimeout):
        refund()
    assert time.monotonic() - started < 2
    assert ran == []


def test_an_unreachable_gate_stops_the_call(client: GateClient) -> None:
    """No gate, no call: the guard raises the client's GateUnavailable."""
    ran: list[bool] = []
    with GateClient("http://127.0.0.1:9", retry=Retry(attempts=2, backoff_s=0.01)) as nowhere:

        @guard(nowhere, on_obligations=lambda *_: None)
        def lookup() -> None:
            ran.append(True)

        with acting_as(ANALYST), pytest.raises(client_errors.GateUnavailable):
            lookup()
    assert ran == []


def test_without_an_acting_context_nothing_is_decided(client: GateClient) -> None:
    """A guard outside acting_as has no subject: it raises before asking."""

    @guard(client, on_obligations=lambda *_: None)
    def lookup() -> None:
        raise AssertionError("ran")

    with pytest.raises(LookupError, match="acting_as"):
        lookup()


def test_with_block_runs_on_allow_and_yields_the_decision(client: GateClient) -> None:
    """The context manager form: the decision, with its obligations, is the `as` value."""
    with (
        acting_as(ANALYST),
        guard(
            client, action="web.search", arguments={"q": "x"}, on_obligations=lambda *_: None
        ) as d,
    ):
        assert current_decision() is d
    assert d.decision == "allow"
    with (
        acting_as(ANALYST),
        pytest.raises(client_errors.ActionDenied),
        guard(client, action="shell.exec", on_obligations=lambda *_: None),
    ):
        pytest.fail("a denied block ran")


def test_movement_and_delegation_helpers_carry_the_context(gate: Gate, client: GateClient) -> None:
    """data_movement and delegation are decided the same way; inside an allowed delegation the
    context acts as the delegatee with the hop on its chain, and the next request carries it."""
    data = Data(classification="internal", labels=["report"])
    with acting_as(ANALYST, session_id="s-2", trace_id="t-2"):
        with movement(
            client,
            data=data,
            source=Endpoint(type="store", id="reports"),
            destination=Endpoint(type="agent", id=CODER),
            operation="copy",
            on_obligations=lambda *_: None,
        ) as moved:
            assert moved.decision == "allow"
        with delegation(
            client,
            delegatee=CODER,
            goal="fix the bug",
            scopes=["repo:write"],
            ttl_seconds=600,
            on_obligations=lambda *_: None,
        ):
            inside = current()
        assert current().subject == ANALYST
    assert (inside.subject, inside.session_id, inside.trace_id) == (CODER, "s-2", "t-2")
    [hop] = inside.delegation_chain
    assert (hop.delegator, hop.delegatee, hop.scopes) == (ANALYST, CODER, ["repo:write"])
    kinds = [(r["kind"], r["decision"]) for r in decisions(gate)]
    assert kinds == [("data_movement", "allow"), ("delegation", "allow")]


def test_async_guard_decides_waits_and_runs(gate: Gate) -> None:
    """An async tool under an AsyncGateClient: deny raises, hitl waits for the grant, allow runs."""
    ran: list[str] = []

    async def main() -> None:
        async with AsyncGateClient(gate.url, api_key=gate.keys["runtime"]) as aclient:

            @guard(aclient, action="payments.refund", hitl=FAST, on_obligations=lambda *_: None)
            async def refund(amount: int) -> str:
                ran.append("refund")
                return "ok"

            @guard(aclient, action="shell.exec", on_obligations=lambda *_: None)
            async def shell() -> None:
                ran.append("shell")

            with acting_as(ANALYST, session_id="s-3"):
                with pytest.raises(client_errors.ActionDenied):
                    await shell()
                async with anyio.create_task_group() as group:
                    group.start_soon(approve_soon)
                    assert await refund(7) == "ok"
                async with guard(aclient, action="web.search", on_obligations=lambda *_: None) as d:
                    assert d.decision == "allow"

    async def approve_soon() -> None:
        async with httpx.AsyncClient(
            base_url=gate.url, headers={"X-API-Key": gate.keys["auditor"]}
        ) as h:
            for _ in range(500):
                pending = (await h.get("/v1/approvals?status=pending")).json()["approvals"]
                if pending:
                    await anyio.to_thread.run_sync(vote, gate, pending[0]["id"])
                    return
                await anyio.sleep(0.02)

    anyio.run(main)
    assert ran == ["refund"]


def test_a_sync_function_with_an_async_client_is_refused_at_decoration(gate: Gate) -> None:
    """Mixing a plain function with an AsyncGateClient is a TypeError before any call."""
    aclient = AsyncGateClient(gate.url)
    with pytest.raises(TypeError, match="GateClient"):
        guard(aclient)(lambda: None)
    context = GateContext(subject=ANALYST)
    assert context.subject_model().id == ANALYST


def test_one_guard_object_entered_by_concurrent_tasks(gate: Gate) -> None:
    """The same `async with` guard entered by several tasks at once: each sees its decision."""
    seen: list[str] = []

    async def main() -> None:
        async with AsyncGateClient(gate.url, api_key=gate.keys["runtime"]) as aclient:
            shared = guard(aclient, action="web.search", on_obligations=lambda *_: None)

            async def one() -> None:
                async with shared as decision:
                    await anyio.sleep(0.05)
                    assert current_decision() is decision
                    seen.append(decision.decision_id)

            with acting_as(ANALYST):
                async with anyio.create_task_group() as group:
                    for _ in range(4):
                        group.start_soon(one)

    anyio.run(main)
    assert len(set(seen)) == 4


def test_bound_arguments_name_every_parameter_as_json() -> None:
    """Positional and keyword arguments by name, defaults applied, **kwargs flattened, `self`
    left out, values that are not JSON sent as their str."""
    import inspect

    from maestro_gate.client.guarded import bound_arguments

    class Mailer:
        def send(self, to: str, *cc: str, urgent: bool = False, **headers: Any) -> None:
            """A method with every kind of parameter."""

    signature = inspect.signature(Mailer.send)
    arguments = bound_arguments(
        signature, (Mailer(), "a@example.com", "b@example.com"), {"x_trace": Path("/t")}
    )
    assert arguments == {
        "to": "a@example.com",
        "cc": ["b@example.com"],
        "urgent": False,
        "x_trace": "/t",
    }


def test_leaving_a_guarded_block_leaves_nothing_in_the_context(client: GateClient) -> None:
    """Adapters make a guard per call: after the block the context holds none of the guard's
    variables, so a long-running agent does not accumulate them."""
    import contextvars

    def ours() -> list[str]:
        return sorted(v.name for v in contextvars.copy_context() if v.name.startswith("maestro"))

    with acting_as(ANALYST):
        before = ours()
        for _ in range(5):
            with guard(client, action="web.search", on_obligations=lambda *_: None):
                assert len(ours()) > len(before)
        assert ours() == before


def test_the_with_form_needs_an_action_name(client: GateClient) -> None:
    """`with guard(client):` has no tool to name: a TypeError before anything is asked."""
    with acting_as(ANALYST), pytest.raises(TypeError, match="action="), guard(client):
        pytest.fail("ran")
