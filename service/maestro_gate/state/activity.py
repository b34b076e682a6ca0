"""What one decided request adds to the state: its session and its history entry.

What a request costs is core/decision/budgets.py's `request_cost` (the declared cost, or the
registry's for a costed tool when higher); the state sources reserve it at the snapshot and spend it
only when the request is allowed. A history entry carries `kind`, `action` (the tool, the data
operation, or `delegate`), `classification` and `destination_type` when the request has them (a
missing key, never null: a null classification would rank as the most sensitive), the `task_id` and
`state_version` of its context when it names them (the policy's workflow rules: which steps of a
task's plan ran, and the newest state version the task was acted on), and the decision. Entries are
listed oldest first.
"""

from __future__ import annotations

from typing import Any

from maestro_gate.core.decision.requests import AgentAction, AnyRequest, DataMovement

NO_SESSION = "-"


def session_of(request: AnyRequest) -> str:
    """The session a request belongs to (`-` when it names none)."""
    return request.subject.session_id or NO_SESSION


def chain_agents(request: AnyRequest) -> list[str]:
    """The other agents of the request's delegation chain, in chain order, each once."""
    seen = {request.subject.id}
    agents: list[str] = []
    for hop in request.context.delegation_chain:
        for agent in (hop.delegator, hop.delegatee):
            if agent not in seen:
                seen.add(agent)
                agents.append(agent)
    return agents


def entry(request: AnyRequest, decision: str) -> dict[str, Any]:
    """The `state.session.recent` entry for a decided request, naming its agent.

    Beside the caller's label it keeps what it read from (a movement's source, an action's
    target), so the policies can rank the entry by the registry's classification of that store
    (a label alone would let a reader launder restricted data out of the session's taint), and
    where a movement went (its destination: what the session itself wrote into a store).
    """
    item: dict[str, Any] = {"agent": request.subject.id, "kind": request.kind}
    if request.context.task_id is not None:
        item["task_id"] = request.context.task_id
    if request.context.state_version is not None:
        item["state_version"] = request.context.state_version
    if isinstance(request, AgentAction):
        item["action"] = request.action
        if request.target is not None:
            item["target"] = request.target.id
            item["destination_type"] = request.target.type
            if request.target.classification is not None:
                item["classification"] = request.target.classification
    elif isinstance(request, DataMovement):
        item["action"] = request.operation
        item["source"] = request.source.id
        item["classification"] = request.data.classification
        item["destination"] = request.destination.id
        item["destination_type"] = request.destination.type
    else:
        item["action"] = "delegate"
        item["destination_type"] = "agent"
    item["decision"] = decision
    return item


def window_index(now_s: float, window_s: int) -> int:
    """The fixed budget period `now_s` falls in."""
    return int(now_s // window_s)
