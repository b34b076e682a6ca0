"""OpenID AuthZEN 1.0 over HTTP: the specification's request and response examples on a real
server on loopback, decided by the DecisionPoint on the real engine and audited like /v1/decide.

The bundle is the test bundle of tests/auth_support.py plus one rule: document `2` is denied,
so the specification's three-document example answers true, false, true as it does there.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_support import ANALYST, GATE_REGO, gate_settings, records
from tests.conftest import write_bundle
from tests.test_hot_reload import serving

DOCUMENT_2 = """deny contains r if {
  input.target.id == "2"
  r := {"rule": "L2.document_restricted", "layer": "l2_data_operations",
        "threats": ["T5"], "message": "document 2 is restricted"}
}

hitl contains r if {"""

# The specification's examples (authorization-api-1_0.md), verbatim.
SPEC_EVALUATION = {
    "subject": {"type": "user", "id": "alice@example.com"},
    "resource": {"type": "account", "id": "123"},
    "action": {"name": "can_read", "properties": {"method": "GET"}},
    "context": {"time": "1985-10-26T01:22-07:00"},
}
THREE_DOCUMENTS = {
    "subject": {"type": "user", "id": "alice@example.com"},
    "action": {"name": "read"},
    "options": {"evaluations_semantic": "execute_all"},
    "evaluations": [
        {"resource": {"type": "document", "id": "1"}},
        {"resource": {"type": "document", "id": "2"}},
        {"resource": {"type": "document", "id": "3"}},
    ],
}
DEFAULTS_OVERRIDDEN = {
    "subject": {"type": "user", "id": "alice@example.com"},
    "context": {"time": "2024-05-31T15:22-07:00"},
    "action": {"name": "can_read"},
    "evaluations": [
        {"resource": {"type": "document", "id": "boxcarring.md"}},
        {"resource": {"type": "document", "id": "subject-search.md"}},
        {
            "action": {"name": "can_edit"},
            "resource": {"type": "document", "id": "resource-search.md"},
        },
    ],
}
ALICE = "authzen://user/alice@example.com"


@dataclass
class Gate:
    """A served gate: its URL, settings and principals' headers."""

    url: str
    settings: Any
    headers: dict[str, dict[str, str]]

    def post(
        self, path: str, body: Any, who: str | None = "root", **headers: str
    ) -> httpx.Response:
        """POST a JSON body as `who` (None: no credential)."""
        sent = {**(self.headers[who] if who else {}), **headers}
        return httpx.post(self.url + path, json=body, headers=sent, timeout=30)

    def decisions(self) -> list[dict[str, Any]]:
        """The decision records, in order."""
        return [r for r in records(self.settings) if r["type"] == "decision"]


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The gate on the AuthZEN test bundle, under uvicorn on loopback."""
    write_bundle(
        tmp_path / "bundle",
        {
            "maestro/decision/decision.rego": GATE_REGO.replace(
                "hitl contains r if {", DOCUMENT_2, 1
            )
        },
    )
    settings, headers = gate_settings(tmp_path)
    with serving(settings) as url:
        yield Gate(url, settings, headers)


def decisions_of(answer: httpx.Response) -> list[bool]:
    """The `decision` of each evaluation of a batch answer."""
    assert answer.status_code == 200, answer.text
    return [e["decision"] for e in answer.json()["evaluations"]]


def test_the_specifications_evaluation_example_is_decided_and_audited(gate: Gate) -> None:
    """The example request: 200, a Decision with the gate's answer in its context, one record."""
    answer = gate.post("/access/v1/evaluation", SPEC_EVALUATION, **{"X-Request-ID": "bfe9eb29"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"] == "bfe9eb29"
    body = answer.json()
    assert body["decision"] is True
    context = body["context"]
    assert context["gate_decision"] == "allow"
    assert {"decision_id", "reasons", "layers", "obligations", "audit", "policy", "mode"} <= set(
        context
    )
    [record] = gate.decisions()
    assert record["decision_id"] == context["decision_id"]
    assert record["index"] == context["audit"]["index"]
    assert record["kind"] == "agent_action"
    assert record["subject"] == ALICE
    assert record["input"]["action"] == "can_read"
    assert record["input"]["target"] == {"type": "account", "id": "123"}
    assert record["input"]["context"]["attributes"] == {"time": "1985-10-26T01:22-07:00"}
    assert record["input"]["request_id"] == "bfe9eb29"


@pytest.mark.parametrize(
    ("semantic", "expected", "recorded"),
    [
        ("execute_all", [True, False, True], 3),
        ("deny_on_first_deny", [True, False], 2),
        ("permit_on_first_permit", [True], 1),
    ],
)
def test_the_specifications_semantics_examples_give_its_answers(
    gate: Gate, semantic: str, expected: list[bool], recorded: int
) -> None:
    """Three documents under each semantic: the specification's answers; each evaluation done
    is audited, and none after a short circuit."""
    body = {**copy.deepcopy(THREE_DOCUMENTS), "options": {"evaluations_semantic": semantic}}
    answer = gate.post("/access/v1/evaluations", body)
    assert decisions_of(answer) == expected
    denied = answer.json()["evaluations"][1] if len(expected) > 1 else None
    if denied is not None:
        assert [r["rule"] for r in denied["context"]["reasons"]] == ["L2.document_restricted"]
    assert [r["input"]["target"]["id"] for r in gate.decisions()] == ["1", "2", "3"][:recorded]


def test_top_level_values_are_defaults_an_evaluation_overrides(gate: Gate) -> None:
    """The specification's defaults example: the third evaluation's own action wins."""
    answer = gate.post("/access/v1/evaluations", DEFAULTS_OVERRIDDEN)
    assert decisions_of(answer) == [True, True, True]
    actions = [(r["input"]["action"], r["input"]["target"]["id"]) for r in gate.decisions()]
    assert actions == [
        ("can_read", "boxcarring.md"),
        ("can_read", "subject-search.md"),
        ("can_edit", "resource-search.md"),
    ]
    assert {r["input"]["context"]["attributes"]["time"] for r in gate.decisions()} == {
        "2024-05-31T15:22-07:00"
    }


def test_evaluations_without_an_array_answer_as_one_evaluation(gate: Gate) -> None:
    """No `evaluations`: the request is one Access Evaluation and the answer one Decision."""
    answer = gate.post("/access/v1/evaluations", SPEC_EVALUATION)
    assert answer.status_code == 200
    assert answer.json()["decision"] is True
    assert "evaluations" not in answer.json()


def test_decision_is_true_only_for_allow(gate: Gate) -> None:
    """A deny and a require_hitl are both false; the hitl carries its approval."""
    denied = gate.post(
        "/access/v1/evaluation", {**SPEC_EVALUATION, "action": {"name": "shell.exec"}}
    )
    held = gate.post(
        "/access/v1/evaluation", {**SPEC_EVALUATION, "action": {"name": "payments.refund"}}
    )
    assert (denied.json()["decision"], denied.json()["context"]["gate_decision"]) == (False, "deny")
    assert held.json()["decision"] is False
    context = held.json()["context"]
    assert context["gate_decision"] == "require_hitl"
    assert context["require_hitl"]["approval"]["approvers_required"] == 1
    approval = httpx.get(
        f"{gate.url}/v1/approvals/{context['require_hitl']['approval']['id']}",
        headers=gate.headers["alice"],
        timeout=30,
    )
    assert approval.json()["status"] == "pending"


def test_a_request_missing_what_authzen_requires_is_400(gate: Gate) -> None:
    """No resource: 400 invalid_request naming it (AuthZEN's Bad Request); nothing audited."""
    answer = gate.post(
        "/access/v1/evaluation", {k: v for k, v in SPEC_EVALUATION.items() if k != "resource"}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"
    assert any(e["location"] == "/resource" for e in answer.json()["errors"])
    not_object = gate.post("/access/v1/evaluations", [1, 2])
    assert (not_object.status_code, not_object.json()["code"]) == (400, "invalid_request")
    assert gate.decisions() == []


def test_an_evaluation_that_cannot_be_decided_is_false_and_the_others_are_decided(
    gate: Gate,
) -> None:
    """A batch item without a resource, and one for a subject the caller is not bound to: each
    false with its error; the valid one is decided."""
    body = {
        "action": {"name": "web.search"},
        "evaluations": [
            {"subject": {"type": "agent", "id": ANALYST}},
            {"subject": {"type": "agent", "id": ANALYST}, "resource": {"type": "doc", "id": "1"}},
            {"subject": {"type": "user", "id": "mallory"}, "resource": {"type": "doc", "id": "1"}},
        ],
    }
    answer = gate.post("/access/v1/evaluations", body, who="runtime")
    missing, decided, foreign = answer.json()["evaluations"]
    assert (missing["decision"], missing["context"]["error"]["status"]) == (False, 400)
    assert decided["decision"] is True
    assert foreign["decision"] is False
    assert foreign["context"]["error"] == {
        "status": 403,
        "code": "subject_not_bound",
        "message": "runtime is not bound to subject authzen://user/mallory",
    }
    assert [r["subject"] for r in gate.decisions()] == [ANALYST]
    [attempt] = [r for r in records(gate.settings) if r["type"] == "impersonation_attempt"]
    assert attempt["subject"] == "authzen://user/mallory"


def test_same_credentials_and_roles_as_decide(gate: Gate) -> None:
    """No credential: 401 with the challenge; an approver (no agent role): 403."""
    anonymous = gate.post("/access/v1/evaluation", SPEC_EVALUATION, who=None)
    approver = gate.post("/access/v1/evaluations", THREE_DOCUMENTS, who="alice")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    assert "www-authenticate" in anonymous.headers
    assert (approver.status_code, approver.json()["code"]) == (403, "forbidden")


def test_delegation_and_data_movement_map_to_their_kinds(gate: Gate) -> None:
    """`delegate` is a delegation to the resource agent; `export` with data a data movement."""
    subject = {"type": "agent", "id": ANALYST}
    delegate = {
        "subject": subject,
        "action": {
            "name": "delegate",
            "properties": {"task": {"goal": "summarise", "scopes": ["read"]}, "ttl_seconds": 60},
        },
        "resource": {"type": "agent", "id": "spiffe://corp.example/agent/writer"},
    }
    export = {
        "subject": subject,
        "action": {"name": "export", "properties": {"data": {"classification": "internal"}}},
        "resource": {"type": "external", "id": "partner-api"},
    }
    answer = gate.post("/access/v1/evaluations", {"evaluations": [delegate, export]})
    assert decisions_of(answer) == [True, True]
    first, second = gate.decisions()
    assert (first["kind"], first["input"]["delegatee"]) == (
        "delegation",
        "spiffe://corp.example/agent/writer",
    )
    assert second["kind"] == "data_movement"
    assert second["input"]["source"] == {"type": "agent", "id": ANALYST}
    assert second["input"]["destination"] == {"type": "external", "id": "partner-api"}


def test_on_chain_and_retrieval_declarations_reach_the_request(gate: Gate) -> None:
    """`transaction`, `trigger` and `retrieval` in `action.properties` are the request's own."""
    subject = {"type": "agent", "id": ANALYST}
    transaction = {"chain": "solana-mainnet", "contract": "c", "method": "m", "value": 5}
    trigger = {"chain": "solana-mainnet", "confirmations": 40}
    retrieval = {"embedding_model": "text-embedding-3-large", "index_version": "2026-11-28"}
    transact = {
        "subject": subject,
        "action": {
            "name": "chain_transact",
            "properties": {"transaction": transaction, "trigger": trigger},
        },
        "resource": {"type": "chain", "id": "solana-mainnet"},
    }
    read = {
        "subject": subject,
        "action": {
            "name": "read",
            "properties": {"data": {"classification": "internal"}, "retrieval": retrieval},
        },
        "resource": {"type": "store", "id": "policy-vectors"},
    }
    answer = gate.post("/access/v1/evaluations", {"evaluations": [transact, read]})
    assert answer.status_code == 200, answer.text
    first, second = gate.decisions()
    assert first["input"]["transaction"] == transaction
    assert first["input"]["trigger"] == trigger
    assert second["input"]["retrieval"] == retrieval


def test_workflow_context_fields_reach_the_request_context(gate: Gate) -> None:
    """`state_version` and `channel` in the AuthZEN context are the request's, not attributes."""
    channel = {"id": "a2a-mtls", "authenticated": True, "encrypted": True}
    evaluation = {
        "subject": {"type": "agent", "id": ANALYST},
        "action": {"name": "web.search"},
        "resource": {"type": "tool", "id": "web.search"},
        "context": {"state_version": 3, "channel": channel, "note": "kept"},
    }
    answer = gate.post("/access/v1/evaluation", evaluation)
    assert answer.status_code == 200, answer.text
    (record,) = gate.decisions()
    context = record["input"]["context"]
    assert (context["state_version"], context["channel"]) == (3, channel)
    assert context["attributes"] == {"note": "kept"}


def test_a_retry_with_the_same_request_id_is_answered_from_the_log(gate: Gate) -> None:
    """The same X-Request-ID and body twice: one decision, recorded once; numbered in a batch."""
    single = [
        gate.post("/access/v1/evaluation", SPEC_EVALUATION, **{"X-Request-ID": "r-1"})
        for _ in range(2)
    ]
    batch = [
        gate.post("/access/v1/evaluations", THREE_DOCUMENTS, **{"X-Request-ID": "b-1"})
        for _ in range(2)
    ]
    assert single[0].json() == single[1].json()
    assert batch[0].json() == batch[1].json()
    ids = [r["input"]["request_id"] for r in gate.decisions()]
    assert ids == ["r-1", "b-1/0", "b-1/1", "b-1/2"]


def test_the_configuration_names_the_endpoints_without_a_credential(gate: Gate) -> None:
    """`/.well-known/authzen-configuration`: the PDP and its two evaluation endpoints."""
    answer = httpx.get(f"{gate.url}/.well-known/authzen-configuration", timeout=30)
    assert answer.status_code == 200
    assert answer.json() == {
        "policy_decision_point": gate.url,
        "access_evaluation_endpoint": f"{gate.url}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{gate.url}/access/v1/evaluations",
    }
