"""`AsyncGateClient`: ask the gate from asyncio code, over one pooled httpx connection pool."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx

from maestro_gate.client import wire
from maestro_gate.client.exceptions import GateClientError, GateTimeout
from maestro_gate.client.wire import Retry, Token
from maestro_gate.core.decision.decisions import DecisionResponse
from maestro_gate.core.decision.requests import AnyRequest

T = TypeVar("T")


class AsyncGateClient:
    """A client of one gate: `decide` a request, read an approval; fails closed.

    `decide` returns only a decision the gate sent; an unreachable gate, a timeout, a 5xx, a
    malformed answer or an unknown decision value raise (client/exceptions.py). `verify` is httpx's:
    an `ssl.SSLContext` (a private CA, a client certificate for mTLS) or False for none.
    `timeout_s` bounds each call, retries included, and can be set per call. Use it as an async
    context manager, or `aclose()` it: it holds a connection pool.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: Token | None = None,
        timeout_s: float = 2.0,
        retry: Retry | None = None,
        max_connections: int = 20,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.retry = retry or Retry()
        self._api_key = api_key
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
            verify=verify,
        )

    async def decide(
        self, request: AnyRequest | Mapping[str, Any], *, timeout_s: float | None = None
    ) -> DecisionResponse:
        """The gate's decision on `request`; raises when there is no decision to return."""
        sent = wire.with_request_id(request)
        body = wire.body_of(sent)

        async def post(deadline: float) -> DecisionResponse:
            return wire.decision_of(await self._exchange("POST", wire.DECIDE, deadline, body))

        return await self._call(post, timeout_s)

    async def approval(self, approval_id: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """The approval `approval_id` as the gate shows it (`status`, `approvals`, `expires_at`)."""
        path = f"/v1/approvals/{approval_id}"

        async def get(deadline: float) -> dict[str, Any]:
            return wire.approval_of(await self._exchange("GET", path, deadline))

        return await self._call(get, timeout_s)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _headers(self) -> dict[str, str]:
        return wire.headers_for(self._api_key, self._token)

    async def _exchange(
        self, method: str, path: str, deadline: float, body: bytes | None = None
    ) -> httpx.Response:
        """One request, its answer read whole before `deadline` (or raising GateTimeout)."""
        left = deadline - time.monotonic()
        try:
            with anyio.fail_after(max(left, 0)):
                async with self._http.stream(
                    method, path, content=body, headers=self._headers(), timeout=left
                ) as streamed:
                    read = bytearray()
                    async for chunk in streamed.aiter_bytes():
                        read += chunk
                        wire.check_progress(len(read), deadline, time.monotonic())
                    return wire.received(streamed, bytes(read))
        except TimeoutError:
            raise GateTimeout("the gate did not answer within the call's timeout") from None

    async def _call(self, attempt: Callable[[float], Awaitable[T]], timeout_s: float | None) -> T:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        tries = 0
        while True:
            tries += 1
            if deadline <= time.monotonic():
                raise GateTimeout("the call's timeout passed before the gate answered")
            try:
                try:
                    return await attempt(deadline)
                except httpx.HTTPError as exc:
                    raise wire.transport_error(exc) from exc
            except GateClientError as error:
                wait = self.retry.delay(error, tries, deadline - time.monotonic())
                if wait is None:
                    raise
                await asyncio.sleep(wait)
