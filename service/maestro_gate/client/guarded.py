"""The machinery of the guard (client/guard.py builds one per request kind): decide, then run.

A Guard wraps a function (each call decided with its bound arguments) or a `with` block (decided
on entry). On allow the obligations go to `on_obligations` (with obligations and no handler the
call does not run) and the call runs with `current_decision()` set; on deny ActionDenied; on
`require_hitl` the HitlPolicy decides (client/approval.py). An async function or `async with`
needs an AsyncGateClient, a plain one a GateClient.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, cast

from pydantic_core import to_jsonable_python

from maestro_gate.client import context as acting
from maestro_gate.client.approval import (
    HitlPolicy,
    verdict,
    wait_and_resubmit,
    wait_and_resubmit_async,
)
from maestro_gate.client.async_client import AsyncGateClient
from maestro_gate.client.exceptions import ActionDenied, ObligationsUnhandled
from maestro_gate.client.sync_client import GateClient
from maestro_gate.core.decision.decisions import DecisionResponse, Obligation
from maestro_gate.core.decision.requests import (
    AnyRequest,
    Resource,
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

ObligationHandler = Callable[[list[Obligation], DecisionResponse], None]
"""Takes the obligations of an allow before the call runs; raise to stop the call."""

Client = GateClient | AsyncGateClient
TargetOf = Resource | Callable[[dict[str, Any]], Resource | None] | None
SKIPPED = frozenset({"self", "cls"})
UNNAMED = "?"
"""The `what` of a guard built without an action name: the decorator takes the function's."""

_DECISION: ContextVar[DecisionResponse | None] = ContextVar("maestro_gate_decision", default=None)


def current_decision() -> DecisionResponse:
    """The decision that let the running guarded call (or `with` block) proceed."""
    decision = _DECISION.get()
    if decision is None:
        raise LookupError("not inside a guarded call")
    return decision


@dataclass(frozen=True)
class PendingApproval(Generic[T]):
    """A call waiting for a human: the `require_hitl` answer, the request, and how to resume.

    `resume()` waits for the approval (per the guard's HitlPolicy, as `wait` does), re-submits
    the same request with it and, on allow, runs the call (for an async call, await it).
    """

    decision: DecisionResponse
    request: AnyRequest
    resume: Callable[[], T]

    @property
    def approval_id(self) -> str:
        """The id approvers act on (`POST /v1/approvals/{id}/approve`)."""
        assert self.decision.approval is not None  # the client refuses hitl without a ticket
        return self.decision.approval.id


class ApprovalPending(ActionDenied):
    """A `with` block under the `pending` policy: it did not run; `pending.resume()` decides."""

    def __init__(self, pending: PendingApproval[Any]) -> None:
        super().__init__("a human approval is pending", decision=pending.decision)
        self.pending = pending


class Guard:
    """Decides before a call: a decorator for tool functions and a (async) context manager."""

    def __init__(
        self,
        client: Client,
        build: Callable[[acting.GateContext, dict[str, Any] | None, str | None], AnyRequest],
        *,
        what: str,
        hitl: HitlPolicy,
        on_obligations: ObligationHandler | None,
        context: acting.GateContext | None,
        entered: Callable[[AnyRequest], acting.GateContext | None] | None = None,
    ) -> None:
        self.client = client
        self.hitl = hitl
        self.on_obligations = on_obligations
        self._build = build
        self._what = what
        self._context = context
        self._entered = entered
        # Per context (thread or task), so one guard can be entered concurrently.
        self._exits: ContextVar[tuple[ExitStack, ...]] = ContextVar(
            f"maestro_gate_guard_{id(self)}", default=()
        )

    # The decorator.

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Wrap `fn`: each call is decided first, with `fn`'s bound arguments."""
        signature = inspect.signature(fn)
        name = self._what if self._what != UNNAMED else fn.__name__

        def request_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AnyRequest:
            return self._build(self._acting(), bound_arguments(signature, args, kwargs), name)

        if inspect.iscoroutinefunction(fn):
            client = self._async_client(name)

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                request = request_for(args, kwargs)
                asked = await client.decide(request)

                async def proceed(decision: DecisionResponse) -> Any:
                    with self._running(decision):
                        return await fn(*args, **kwargs)

                if asked.decision == "require_hitl" and self.hitl.on_hitl == "pending":

                    async def resume() -> Any:
                        done = await wait_and_resubmit_async(
                            client, request, asked, self.hitl, name
                        )
                        return await proceed(self._handed(done, name))

                    return PendingApproval(asked, request, resume)
                return await proceed(await self._settle_async(client, request, asked, name))

            return cast(Callable[P, R], guarded_async)

        sync = self._sync_client(name)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            request = request_for(args, kwargs)
            asked = sync.decide(request)

            def proceed(decision: DecisionResponse) -> Any:
                with self._running(decision):
                    return fn(*args, **kwargs)

            if asked.decision == "require_hitl" and self.hitl.on_hitl == "pending":
                return PendingApproval(
                    asked,
                    request,
                    lambda: proceed(
                        self._handed(wait_and_resubmit(sync, request, asked, self.hitl, name), name)
                    ),
                )
            return proceed(self._settle(sync, request, asked, name))

        return cast(Callable[P, R], guarded)

    # The context manager.

    def __enter__(self) -> DecisionResponse:
        client = self._sync_client(self._what)
        request = self._block_request()
        asked = client.decide(request)
        if asked.decision == "require_hitl" and self.hitl.on_hitl == "pending":
            raise ApprovalPending(
                PendingApproval(
                    asked,
                    request,
                    lambda: self._handed(
                        wait_and_resubmit(client, request, asked, self.hitl, self._what), self._what
                    ),
                )
            )
        return self._open(request, self._settle(client, request, asked, self._what))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    async def __aenter__(self) -> DecisionResponse:
        client = self._async_client(self._what)
        request = self._block_request()
        asked = await client.decide(request)
        if asked.decision == "require_hitl" and self.hitl.on_hitl == "pending":

            async def resume() -> DecisionResponse:
                done = await wait_and_resubmit_async(client, request, asked, self.hitl, self._what)
                return self._handed(done, self._what)

            raise ApprovalPending(PendingApproval(asked, request, resume))
        return self._open(request, await self._settle_async(client, request, asked, self._what))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    # Shared steps.

    def _settle(
        self, client: GateClient, request: AnyRequest, asked: DecisionResponse, what: str
    ) -> DecisionResponse:
        if asked.decision == "require_hitl":
            return self._handed(wait_and_resubmit(client, request, asked, self.hitl, what), what)
        return self._handed(verdict(asked, what), what)

    async def _settle_async(
        self, client: AsyncGateClient, request: AnyRequest, asked: DecisionResponse, what: str
    ) -> DecisionResponse:
        if asked.decision == "require_hitl":
            done = await wait_and_resubmit_async(client, request, asked, self.hitl, what)
            return self._handed(done, what)
        return self._handed(verdict(asked, what), what)

    def _handed(self, decision: DecisionResponse, what: str) -> DecisionResponse:
        """`decision` after its obligations went to the handler; refused if there is none."""
        if decision.obligations:
            if self.on_obligations is None:
                raise ObligationsUnhandled(
                    f"the gate allowed {what} with obligations "
                    f"({', '.join(o.rule for o in decision.obligations)}) and the guard has no "
                    "on_obligations handler to give them to",
                    reasons=list(decision.obligations),
                    decision=decision,
                )
            self.on_obligations(list(decision.obligations), decision)
        return decision

    @contextmanager
    def _running(self, decision: DecisionResponse) -> Iterator[None]:
        token = _DECISION.set(decision)
        try:
            yield
        finally:
            _DECISION.reset(token)

    def _open(self, request: AnyRequest, decision: DecisionResponse) -> DecisionResponse:
        """Enter the `with` block: the decision in force, and the delegatee's context if any.

        What `_leave` undoes is kept per context, and reset rather than overwritten, so the
        context keeps nothing of a guard once its block is left (adapters make one per call).
        """
        stack = ExitStack()
        stack.callback(_DECISION.reset, _DECISION.set(decision))
        inner = self._entered(request) if self._entered else None
        if inner is not None:
            stack.enter_context(acting.entered(inner))
        stack.callback(self._exits.reset, self._exits.set((*self._exits.get(), stack)))
        return decision

    def _leave(self) -> None:
        self._exits.get()[-1].close()

    def _block_request(self) -> AnyRequest:
        if self._what == UNNAMED:
            raise TypeError("the `with` form of guard needs action=<tool name>")
        return self._build(self._acting(), None, None)

    def _acting(self) -> acting.GateContext:
        return self._context if self._context is not None else acting.current()

    def _sync_client(self, what: str) -> GateClient:
        if not isinstance(self.client, GateClient):
            raise TypeError(f"{what}: a plain function or `with` needs a GateClient")
        return self.client

    def _async_client(self, what: str) -> AsyncGateClient:
        if not isinstance(self.client, AsyncGateClient):
            raise TypeError(
                f"{what}: a coroutine function or `async with` needs an AsyncGateClient"
            )
        return self.client


def bound_arguments(
    signature: inspect.Signature, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied, as JSON values.

    `self` and `cls` are left out; `**kwargs` are flattened in; values that are not JSON
    (objects, bytes) are sent as their `str`.
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in SKIPPED:
            continue
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    jsonable: dict[str, Any] = to_jsonable_python(arguments, fallback=str)
    return jsonable
