"""OpenID AuthZEN 1.0: its subject, action, resource and context as the gate's three request kinds,
and the gate's decision as an AuthZEN Decision.

The mapping (README, "AuthZEN 1.0"):

- `subject.id` is the acting agent. An id that is not a URI becomes `authzen://<type>/<id>`
  (an agent the registry does not know is denied; whitespace percent-encoded).
  `subject.properties` may carry `session_id`, `run_id` and `on_behalf_of`.
- `action.name` picks the kind:
  - `delegate`: a **delegation** to the agent `resource.id` (`resource.type` `agent`), with
    `action.properties` `task` ({`goal`, `scopes`}) and `ttl_seconds`;
  - `read`, `write`, `copy`, `export` or `memory_write` with `action.properties.data`
    ({`classification`, `labels`, `tenant`, `provenance`, `contains_pii`}): a
    **data_movement** of that data. `resource` ({`type`: agent|store|tool|external, `id`})
    is the source of a `read` and the destination otherwise; the other end is
    `action.properties.source` (or `destination`), by default the subject agent itself;
  - any other name: an **agent_action** calling the tool `action.name`, with the target
    `resource` (its `properties` may carry `classification` and `tenant`) and, from
    `action.properties`, `arguments`, `reversible`, `side_effects`, `model`, `execution`,
    `code`, `tool`, `transaction`, `trigger` and `retrieval`; a data movement takes
    `action.properties.retrieval` too.
- `context` fields the gate knows (`task_id`, `goal`, `goal_scopes`, `plan`, `state_version`,
  `channel`, `trace_id`, `reflection_depth`, `delegation_chain`, `timestamp`) are its context;
  every other key goes into `context.attributes`, and `context.approval_id` re-submits with an
  approval.
- The gate's answer: `decision` is true only for allow; `context` carries `decision_id`, the
  gate's own `gate_decision` (allow, deny or require_hitl), `reasons`, `layers`,
  `obligations`, `require_hitl` with its `approval` when a human must decide, `audit`
  ({`index`, `leaf_hash`}), `policy` and `mode`.

Whatever cannot be mapped raises `AuthzenInvalid` (400 `invalid_request`, as AuthZEN requires
for a request missing what it must carry); the mapped request is then validated as strictly as
a `POST /v1/decide` body.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.requests import AgentAction, Context, RequestBase, Subject
from maestro_gate.core.errors import InvalidRequest

OPERATIONS = ("read", "write", "copy", "export", "memory_write")
# The request models' own fields, so a field added to the gate's request reaches AuthZEN too.
CONTEXT_FIELDS = tuple(name for name in Context.model_fields if name != "attributes")
ACTION_FIELDS = tuple(
    name
    for name in AgentAction.model_fields
    if name not in RequestBase.model_fields and name not in ("kind", "action", "target")
)
SUBJECT_FIELDS = tuple(name for name in Subject.model_fields if name != "id")
Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s]+$")


class AuthzenInvalid(InvalidRequest):
    """An AuthZEN request that is not one (400, as AuthZEN's HTTP binding requires)."""

    code = "invalid_request"


# What the gate cannot record exactly (api/body.py refuses it, 400) is no valid key either.
KEYS: dict[str, Any] = {"propertyNames": {"pattern": r"^[^\ud800-\udfff]*$"}}
Properties = Annotated[dict[str, Any], Field(json_schema_extra=KEYS)]


class Open(BaseModel):
    """AuthZEN objects: unknown fields are ignored, as the specification requires."""

    model_config = ConfigDict(extra="allow", json_schema_extra=KEYS)


Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Word = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Identity = Annotated[str, StringConstraints(min_length=1, max_length=430)]


class Entity(Open):
    """A Resource."""

    type: Text
    id: Text
    properties: Properties | None = None


class SubjectEntity(Open):
    """A Subject: the acting agent."""

    type: Word
    id: Identity
    properties: Properties | None = None


class Action(Open):
    """What the subject means to do."""

    name: Text
    properties: Properties | None = None


class Evaluation(Open):
    """One Access Evaluation request (`POST /access/v1/evaluation`)."""

    subject: SubjectEntity
    action: Action
    resource: Entity
    context: Properties | None = None


class PartialEvaluation(Open):
    """One item of `evaluations`: what it leaves out comes from the request's top level."""

    subject: SubjectEntity | None = None
    action: Action | None = None
    resource: Entity | None = None
    context: Properties | None = None


class Options(Open):
    """How a batch is evaluated."""

    evaluations_semantic: Semantic = "execute_all"


class Evaluations(Open):
    """An Access Evaluations request (`POST /access/v1/evaluations`)."""

    subject: SubjectEntity | None = None
    action: Action | None = None
    resource: Entity | None = None
    context: Properties | None = None
    evaluations: list[PartialEvaluation] | None = Field(None, max_length=256)
    options: Options | None = None

    def items(self) -> list[PartialEvaluation]:
        """Each evaluation with the top-level defaults filled in (the whole request if none)."""
        if not self.evaluations:
            return [PartialEvaluation(**self._defaults())]
        defaults = self._defaults()
        return [
            PartialEvaluation(**{**defaults, **item.model_dump(exclude_none=True)})
            for item in self.evaluations
        ]

    def _defaults(self) -> dict[str, Any]:
        fields = ("subject", "action", "resource", "context")
        return {k: getattr(self, k).model_dump() if k != "context" else self.context
                for k in fields if getattr(self, k) is not None}  # fmt: skip


class Decision(BaseModel):
    """An AuthZEN Decision: `decision` true only for allow; the gate's answer in `context`."""

    decision: bool
    context: Properties | None = None


class DecisionList(BaseModel):
    """An Access Evaluations response: one Decision per evaluation, in request order."""

    evaluations: list[Decision]


Answers = DecisionList | Decision
"""What `POST /access/v1/evaluations` answers: a DecisionList, or without `evaluations` a
Decision."""


def complete(item: PartialEvaluation) -> Evaluation:
    """An evaluation that carries subject, action and resource; AuthzenInvalid naming what not."""
    missing = [k for k in ("subject", "action", "resource") if getattr(item, k) is None]
    if missing:
        raise AuthzenInvalid(
            f"an evaluation needs {', '.join(missing)}, given in it or at the top level"
        )
    return Evaluation.model_validate(item.model_dump(exclude_none=True))


def to_request(evaluation: Evaluation, request_id: str | None = None) -> dict[str, Any]:
    """The gate request body (to validate as a `POST /v1/decide` body) for an evaluation."""
    name = evaluation.action.name
    body: dict[str, Any] = {"subject": _subject(evaluation.subject)}
    if name == "delegate":
        body.update(_delegation(evaluation))
    elif name in OPERATIONS and "data" in (evaluation.action.properties or {}):
        body.update(_data_movement(evaluation, body["subject"]["id"]))
    else:
        body.update(_agent_action(evaluation))
    context = dict(evaluation.context or {})
    approval_id = context.pop("approval_id", None)
    if approval_id is not None:
        body["approval_id"] = approval_id
    gate_context = {k: context.pop(k) for k in CONTEXT_FIELDS if k in context}
    if context:
        gate_context["attributes"] = context
    if gate_context:
        body["context"] = gate_context
    if request_id is not None:
        body["request_id"] = request_id
    return body


def to_decision(response: DecisionResponse) -> Decision:
    """The AuthZEN Decision for the gate's audited answer."""
    answer = response.model_dump(mode="json", exclude_none=True)
    context: dict[str, Any] = {
        "decision_id": answer["decision_id"],
        "gate_decision": answer["decision"],
        "reasons": answer["reasons"],
        "layers": answer["layers"],
        "obligations": answer["obligations"],
        "audit": answer["audit"],
        "policy": answer["policy"],
        "mode": answer["mode"],
    }
    if "approval" in answer:
        context["require_hitl"] = {"approval": answer["approval"]}
    if "evaluated_decision" in answer:
        context["evaluated_decision"] = answer["evaluated_decision"]
    return Decision(decision=response.decision == "allow", context=context)


def refused(status: int, code: str, message: str) -> Decision:
    """The Decision of one evaluation of a batch that could not be decided: false, and why."""
    return Decision(
        decision=False, context={"error": {"status": status, "code": code, "message": message}}
    )


def stops(semantic: Semantic, decision: Decision) -> bool:
    """True when `decision` ends a batch under `semantic` (`&&` or `||` short-circuiting)."""
    if semantic == "deny_on_first_deny":
        return not decision.decision
    if semantic == "permit_on_first_permit":
        return decision.decision
    return False


def _subject(subject: SubjectEntity) -> dict[str, Any]:
    if _URI.match(subject.id):
        agent = subject.id
    else:
        agent = f"authzen://{_no_space(subject.type)}/{_no_space(subject.id)}"
    mapped: dict[str, Any] = {"id": agent}
    properties = subject.properties or {}
    mapped.update({k: properties[k] for k in SUBJECT_FIELDS if k in properties})
    return mapped


def _no_space(text: str) -> str:
    """`text` with each whitespace character percent-encoded (an agent URI holds none)."""
    return "".join(quote(c, safe="") if c.isspace() else c for c in text)


def _agent_action(evaluation: Evaluation) -> dict[str, Any]:
    resource = evaluation.resource
    target: dict[str, Any] = {"type": resource.type, "id": resource.id}
    properties = resource.properties or {}
    target.update({k: properties[k] for k in ("classification", "tenant") if k in properties})
    given = evaluation.action.properties or {}
    mapped = {"kind": "agent_action", "action": evaluation.action.name, "target": target}
    mapped.update({k: given[k] for k in ACTION_FIELDS if k in given})
    return mapped


def _data_movement(evaluation: Evaluation, agent: str) -> dict[str, Any]:
    operation = evaluation.action.name
    given = evaluation.action.properties or {}
    resource = {"type": evaluation.resource.type, "id": evaluation.resource.id}
    subject = {"type": "agent", "id": agent}
    if operation == "read":
        source, destination = resource, given.get("destination", subject)
    else:
        source, destination = given.get("source", subject), resource
    mapped = {
        "kind": "data_movement",
        "operation": operation,
        "data": given["data"],
        "source": source,
        "destination": destination,
    }
    if "retrieval" in given:
        mapped["retrieval"] = given["retrieval"]
    return mapped


def _delegation(evaluation: Evaluation) -> dict[str, Any]:
    resource = evaluation.resource
    if resource.type != "agent":
        raise AuthzenInvalid("a `delegate` action's resource is the delegatee: type `agent`")
    given = evaluation.action.properties or {}
    missing = [k for k in ("task", "ttl_seconds") if k not in given]
    if missing:
        raise AuthzenInvalid(f"a `delegate` action needs action.properties {', '.join(missing)}")
    return {
        "kind": "delegation",
        "delegatee": resource.id,
        "task": given["task"],
        "ttl_seconds": given["ttl_seconds"],
    }
