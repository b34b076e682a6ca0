"""Who is acting, in which session and trace, down which delegation chain: a context variable.

    with acting_as("spiffe://corp.example/agent/analyst", session_id="s-1", trace_id="t-9"):
        send_report(...)          # every guard inside builds its subject and context from it

The context follows the code into threads started with `contextvars.copy_context()` and into
asyncio tasks, as context variables do. A delegation the gate allowed (`client.guard.delegate`)
opens a nested context acting as the delegatee, with the hop added to the chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from maestro_gate.core.decision.requests import Context, DelegationHop, Subject


@dataclass(frozen=True, slots=True)
class GateContext:
    """The acting agent and what the gate's `subject` and `context` fields carry about it."""

    subject: str
    session_id: str | None = None
    run_id: str | None = None
    on_behalf_of: str | None = None
    trace_id: str | None = None
    task_id: str | None = None
    goal: str | None = None
    goal_scopes: tuple[str, ...] = ()
    delegation_chain: tuple[DelegationHop, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def subject_model(self) -> Subject:
        """The request's `subject`."""
        return Subject(
            id=self.subject,
            session_id=self.session_id,
            run_id=self.run_id,
            on_behalf_of=self.on_behalf_of,
        )

    def context_model(self) -> Context:
        """The request's `context`."""
        return Context(
            task_id=self.task_id,
            goal=self.goal,
            goal_scopes=list(self.goal_scopes),
            trace_id=self.trace_id,
            delegation_chain=list(self.delegation_chain),
            attributes=dict(self.attributes),
        )

    def delegated_to(self, hop: DelegationHop) -> GateContext:
        """The context of the delegatee of `hop`: same session and trace, the chain one longer."""
        return replace(
            self,
            subject=hop.delegatee,
            delegation_chain=(*self.delegation_chain, hop),
        )


_CURRENT: ContextVar[GateContext | None] = ContextVar("maestro_gate_context", default=None)


class NoGateContext(LookupError):
    """A guard ran outside `acting_as(...)` and was given no context: it cannot name a subject."""


def current() -> GateContext:
    """The context in force; raises NoGateContext outside `acting_as`."""
    context = _CURRENT.get()
    if context is None:
        raise NoGateContext("no acting agent: wrap the call in maestro_gate.client.acting_as(...)")
    return context


@contextmanager
def acting_as(subject: str | GateContext, **fields: Any) -> Iterator[GateContext]:
    """Act as `subject` (an agent id, or a whole context) inside the block.

    Fields left out are inherited from an enclosing context of the same subject (a nested
    `acting_as` narrows a trace or goal without repeating the session).
    """
    context = subject if isinstance(subject, GateContext) else _derived(subject, fields)
    with entered(context):
        yield context


@contextmanager
def entered(context: GateContext) -> Iterator[GateContext]:
    """Make `context` the one in force inside the block."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def _derived(subject: str, fields: dict[str, Any]) -> GateContext:
    outer = _CURRENT.get()
    if "goal_scopes" in fields:
        fields["goal_scopes"] = tuple(fields["goal_scopes"])
    if "delegation_chain" in fields:
        fields["delegation_chain"] = tuple(fields["delegation_chain"])
    if outer is not None and outer.subject == subject:
        return replace(outer, **fields)
    return GateContext(subject=subject, **fields)
