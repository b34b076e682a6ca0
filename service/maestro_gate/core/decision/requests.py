"""The request contract of `POST /v1/decide` (version 1): three kinds, discriminated by `kind`.

Field names follow AuthZEN where they fit (subject, action, resource as `target`, context) and
DESIGN §4.1 otherwise. The Rego input document is `Request.model_dump(mode="json")` plus `state`.

Validation is strict: a typed field takes only its own JSON type (no `"3"` or `true` for an
integer, no `0` or `"false"` for a boolean), so the value decided and audited is the value sent.
An integer is a JSON number without a fraction, as JSON Schema says: `3.0` is the integer 3
(RFC 8785 writes both as `3`, so the audit record is the same), `3.5` is refused.
`context.timestamp` is kept as the RFC 3339 text it arrived as, checked but never re-rendered.
Free-form objects (`arguments`, `context.attributes`) take any JSON.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)

AgentId = Annotated[
    str,
    StringConstraints(min_length=3, max_length=512, pattern=r"^[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s]+$"),
]
"""An agent identity as a URI, SPIFFE style: `spiffe://corp.example/agent/analyst`."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=4096)]
Classification = Annotated[str, StringConstraints(min_length=1, max_length=64)]
JsonObject = dict[str, Any]


def _integral(value: Any) -> Any:
    """A float without a fraction as its int (JSON has one number type); anything else as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral)
"""For an integer field, after its bounds: a JSON number with no fraction, `3` or `3.0`."""

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339(text: str) -> str:
    """`text` itself when it is an RFC 3339 date-time (a leap second `:60` included)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2025-01-31T09:30:00Z")
    seconds = match.start(1)
    normal = text[:seconds] + min(match.group(1), "59") + text[seconds + 2 :]
    datetime.fromisoformat(normal.upper())  # the ranges: month, day of month, hour, offset
    return text


Timestamp = Annotated[
    str,
    AfterValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 date-time, kept as sent."""


class Strict(BaseModel):
    """Base for wire models: unknown fields are errors and no value is coerced to a field's type."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Subject(Strict):
    """The acting agent."""

    id: AgentId
    session_id: Name | None = None
    run_id: Name | None = None
    on_behalf_of: Name | None = Field(None, description="The originating human or principal.")


class DelegationHop(Strict):
    """One hop of the delegation chain that led to this request."""

    delegator: AgentId
    delegatee: AgentId
    scopes: list[Name] = Field(default_factory=list, max_length=256)
    ttl_seconds: Annotated[int, Field(ge=1, le=31_536_000), INTEGRAL] | None = None


class PlanStep(Strict):
    """A step of the agent's declared plan, checked against the goal's scopes and run in order (L3).

    `action` names the step as the gate records it: the tool of an `agent_action`, the
    operation of a `data_movement`, `delegate` for a delegation.
    """

    action: Name
    scope: Name | None = None
    validation: bool = Field(
        False, description="A validation step: the plan may not go past it before it ran (L3)."
    )


class Channel(Strict):
    """The channel a request's message travels over to its peer, as the runtime declares it (L3).

    The gate cannot see the wire: the flags are the runtime's word and can only refuse. Left out,
    a flag is false, and a channel that is not both authenticated and encrypted is refused.
    """

    id: Name
    authenticated: bool = False
    encrypted: bool = False


class Context(Strict):
    """Where the request comes from: task, goal, trace and the delegation chain so far."""

    task_id: Name | None = None
    goal: Text | None = None
    goal_scopes: list[Name] = Field(default_factory=list, max_length=256)
    plan: list[PlanStep] = Field(default_factory=list, max_length=256)
    state_version: Annotated[int, Field(ge=0, le=2**53 - 1), INTEGRAL] | None = Field(
        None,
        description="The version of the task's shared workflow state the request acted on; "
        "refused when the session's history records a newer one for the task (L3).",
    )
    channel: Channel | None = Field(
        None, description="The channel to the peer agent (delegatee, receiver) or tool server."
    )
    trace_id: Name | None = None
    reflection_depth: Annotated[int, Field(ge=0, le=10_000), INTEGRAL] = 0
    delegation_chain: list[DelegationHop] = Field(default_factory=list, max_length=64)
    timestamp: Timestamp | None = None
    attributes: JsonObject = Field(default_factory=dict)


class Resource(Strict):
    """What an action touches."""

    type: Name
    id: Name
    classification: Classification | None = None
    tenant: Name | None = None


class ModelRef(Strict):
    """The foundation model behind the agent (L1 checks)."""

    id: Name
    digest: Name | None = Field(None, description="Content digest, e.g. `sha256:…`.")


class Execution(Strict):
    """Where and how the action runs (L4 checks)."""

    sandbox: bool = False
    location: Literal["local", "cloud"] | None = None
    egress: list[Name] = Field(default_factory=list, max_length=256, description="Hosts reached.")
    secrets: list[Name] | None = Field(
        default=None,
        max_length=256,
        description="Secrets read. Left out, a tool that reads secrets is denied "
        "(L4.secrets_undeclared); `[]` declares none.",
    )


class CodeArtifact(Strict):
    """Code the action runs, and whether it passed a review gate (L3)."""

    generated: bool = False
    reviewed: bool = False
    review_id: Name | None = None
    digest: Name | None = None


class ToolDescriptor(Strict):
    """The tool as its server described it, e.g. an MCP tool description digest (L7)."""

    server: Name | None = None
    digest: Name


Amount = Annotated[int, Field(ge=0, le=10**15), INTEGRAL]
"""An on-chain amount: an integer in the unit the registry's caps for that chain use."""


class ChainEvent(Strict):
    """The on-chain event an action responds to, as the runtime observed it (L4, T33)."""

    chain: Name
    confirmations: Annotated[int, Field(ge=0, le=1_000_000), INTEGRAL] = Field(
        description="Blocks on top of the event's block when the runtime acted on it."
    )


class Transaction(Strict):
    """The on-chain transaction a transacting tool is asked to make (L6, L7)."""

    chain: Name
    contract: Name = Field(description="The contract (program, address) called.")
    method: Name
    value: Amount = 0
    to_chain: Name | None = Field(
        None, description="Where a bridge call lands, when it crosses to another chain."
    )


class Retrieval(Strict):
    """The index a retrieval queried: the store's embedding model and index version (L2, T49)."""

    embedding_model: Name
    index_version: Name | None = None


class RequestBase(Strict):
    """Fields every kind shares."""

    subject: Subject
    context: Context = Field(default_factory=Context)
    request_id: Name | None = Field(None, description="Set by the caller for idempotent retries.")
    approval_id: Name | None = Field(
        None, description="An approval granted for this exact request, when re-submitting."
    )


class AgentAction(RequestBase):
    """An agent calling a tool or performing an operation."""

    kind: Literal["agent_action"]
    action: Name
    arguments: JsonObject = Field(default_factory=dict)
    target: Resource | None = None
    reversible: bool = True
    side_effects: list[Name] = Field(default_factory=list, max_length=64)
    model: ModelRef | None = None
    execution: Execution | None = None
    code: CodeArtifact | None = None
    tool: ToolDescriptor | None = None
    transaction: Transaction | None = Field(
        None,
        description="Required for a tool the registry does not give a non-transacting risk "
        "class (L6.transaction_not_allowlisted); not read for other tools.",
    )
    trigger: ChainEvent | None = Field(
        None, description="The on-chain event this action responds to, checked for finality."
    )
    retrieval: Retrieval | None = Field(
        None, description="The index queried in the `target` store, checked against its pins."
    )


class Data(Strict):
    """The data that moves."""

    classification: Classification
    labels: list[Name] = Field(default_factory=list, max_length=256)
    tenant: Name | None = None
    provenance: list[Name] = Field(
        default_factory=list, max_length=256, description="Agents and stores it passed through."
    )
    contains_pii: bool = False


class Endpoint(Strict):
    """One end of a data movement."""

    type: Literal["agent", "store", "tool", "external"]
    id: Name


class DataMovement(RequestBase):
    """Data with a classification crossing from a source to a destination."""

    kind: Literal["data_movement"]
    data: Data
    source: Endpoint
    destination: Endpoint
    operation: Literal["read", "write", "copy", "export", "memory_write"]
    retrieval: Retrieval | None = Field(
        None, description="The index queried in the `source` store, checked against its pins."
    )


class Task(Strict):
    """What a delegator hands over."""

    goal: Text
    scopes: list[Name] = Field(default_factory=list, max_length=256)


class Delegation(RequestBase):
    """The subject handing a task and scopes to another agent."""

    kind: Literal["delegation"]
    delegatee: AgentId
    task: Task
    ttl_seconds: Annotated[int, Field(ge=1, le=31_536_000), INTEGRAL]


AnyRequest = AgentAction | DataMovement | Delegation
Request = Annotated[AnyRequest, Field(discriminator="kind")]
REQUEST_ADAPTER: TypeAdapter[AnyRequest] = TypeAdapter(Request)
KINDS = ("agent_action", "data_movement", "delegation")
