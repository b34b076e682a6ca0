"""The OPA engine: an OPA server (sidecar or central) asked over its REST Data API.

Each decision is `POST {opa_url}/v1/data/maestro/decision/result?provenance=true` with
`{"input": document}`, sent through opa-python-client's `AsyncOpaClient`. Anything but a 200
JSON object holding `result` fails closed: `EngineTimeout` past the deadline, `EngineError`
otherwise, both of which the DecisionPoint turns into a deny.

What the async client gives, and what this module adds around it:

- pooling: the client's aiohttp session keeps keep-alive connections in one connector pool;
  `open()` (the lifespan's start) creates it, `close()` releases it.
- deadline: the client only has a session-wide timeout, so each call runs under
  `asyncio.timeout(deadline)`; an abandoned call closes its connection, never a pooled one.
- retries: the client's own retries (500/502/504 with back-off) are turned off, because an OPA
  error is an answer and back-off would spend the deadline. aiohttp does not retry POSTs on a
  keep-alive connection the server closed while idle, so this module retries such a drop once,
  inside the deadline; evaluation reads and never writes.
- error bodies: `query_rule` raises for the status before reading the body, so OPA's
  `{code, message, errors}` is not visible here: the deny names the HTTP status, and OPA logs
  the evaluation error itself.
- authentication: with a token file, every request carries `Authorization: Bearer <token>`, as
  OPA run with `--authentication=token` expects. The file is read when the engine is made and
  again on every reload (`refresh()`), so a rotated token takes effect without a restart; an
  unreadable file at reload is a reload error and the previous token stays in use. OPA's 401 is
  an answer like any other error status: a deny naming it.
- provenance: `?provenance=true` makes OPA say which bundle revision answered, in the same
  response as the decision, so the audit record names the revision that decided even while OPA
  swaps bundles. `refresh()` (the Gate's reload) asks `GET /v1/status` for the active revision
  and activation time, or reads `data.system.bundles` when OPA runs without the status plugin.
  OPA exposes no bundle digest, so the digest is `opa:<revision>`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client import AsyncOpaClient
from opa_client.errors import PolicyNotFoundError

from maestro_gate.core.decision.ports import BundleInfo, EngineResult, EngineStatus
from maestro_gate.core.errors import BundleError, EngineError, EngineTimeout, NotReady

DECISION_PACKAGE = "maestro.decision"
DECISION_RULE = "result"


class OpaEngine:
    """ServingEngine asking an OPA server for `data.maestro.decision.result`.

    OPA activates its own bundles; `reload` asks it which one is active (`refresh`).
    """

    name = "opa"

    def __init__(
        self,
        url: str,
        *,
        bundle_name: str = "",
        request_timeout_s: float = 1.0,
        on_activate: Callable[[BundleInfo], None] | None = None,
        token_file: Path | None = None,
    ) -> None:
        """Raise ValueError for a malformed URL or an unreadable or empty token file."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OPA URL must be http(s)://host[:port], not {url!r}")
        if parts.path not in ("", "/"):
            raise ValueError(f"OPA URL must not carry a path: {url!r}")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        self._bundle_name = bundle_name
        self._request_timeout_s = request_timeout_s
        self._on_activate = on_activate
        self._token_file = token_file
        self._token = read_token(token_file) if token_file is not None else None
        self._client: AsyncOpaClient | None = None
        self._active: BundleInfo | None = None
        self.reachable = False

    async def open(self) -> None:
        """Create the client and its connection pool; call from the running event loop."""
        if self._client is not None:
            return
        client = AsyncOpaClient(
            host=self._host,
            port=self._port,
            ssl=self._tls,
            retries=0,
            timeout=self._request_timeout_s,
            token=self._token,
        )
        await client.__aenter__()
        self._client = client

    async def start(self) -> None:
        """Open the connection pool (`open`)."""
        await self.open()

    async def reload(self, *, allow_downgrade: bool = False, by: str | None = None) -> BundleInfo:
        """Learn OPA's active bundle (`refresh`); OPA, not the gate, guards its rollbacks."""
        return await self.refresh()

    def status(self) -> EngineStatus:
        """The revision OPA last reported, and whether OPA answered when last asked."""
        return EngineStatus(name=self.name, bundle=self._active, up=self.reachable)

    async def close(self) -> None:
        """Close the pooled connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.close_connection()

    def active_bundle(self) -> BundleInfo | None:
        """The revision OPA last reported, or None before OPA has reported one."""
        return self._active

    async def ready(self) -> bool:
        """True when `GET /health?bundles` is 200 and the active revision is known."""
        client = self._client
        if client is None:
            return False
        try:
            async with asyncio.timeout(self._request_timeout_s):
                healthy = bool(await client.check_health(query={"bundles": "true"}))
        except TimeoutError:
            healthy = False
        self.reachable = healthy
        if healthy and self._active is None:
            try:
                await self.refresh()
            except (BundleError, EngineError):
                return False
        return healthy and self._active is not None

    async def refresh(self) -> BundleInfo:
        """Learn the active revision from OPA; raise BundleError if OPA reports none or an error.

        Reads the token file again first: a reload is how a rotated token is taken up.
        """
        client = self._require_client()
        self._reread_token(client)
        try:
            async with asyncio.timeout(self._request_timeout_s):
                reported = await self._reported_bundles(client)
        except TimeoutError:
            self.reachable = False
            raise EngineError(f"OPA at {self.url} did not report its bundles in time") from None
        except aiohttp.ClientError as exc:
            self.reachable = False
            raise EngineError(f"OPA at {self.url} is unreachable: {_describe(exc)}") from exc
        except (KeyError, TypeError, ValueError, PolicyNotFoundError) as exc:
            raise BundleError(f"OPA at {self.url} reports no readable bundle") from exc
        self.reachable = True
        revisions = {name: entry["revision"] for name, entry in reported.items()}
        revision = self._pick(revisions)
        if revision is None:
            raise BundleError(f"OPA at {self.url} reports no active bundle")
        activated = [e["activated_at"] for e in reported.values() if e.get("activated_at")]
        info = self._observe(revision, max(activated) if activated else None)
        problems = [f"{name}: {e['error']}" for name, e in reported.items() if e.get("error")]
        if problems:
            raise BundleError(f"OPA kept revision {revision}; it reports " + "; ".join(problems))
        return info

    async def evaluate(self, document: dict[str, Any], timeout_s: float) -> EngineResult:
        """Ask OPA for the decision within `timeout_s` seconds; fail closed on any doubt."""
        client = self._require_client()
        try:
            async with asyncio.timeout(timeout_s):
                body = await self._query(client, document)
        except TimeoutError:
            raise EngineTimeout(
                f"OPA did not answer within the {timeout_s * 1000:.0f} ms deadline"
            ) from None
        except aiohttp.ContentTypeError as exc:
            self.reachable = True
            raise EngineError(f"OPA answered HTTP {exc.status} without a JSON body") from exc
        except aiohttp.ClientResponseError as exc:
            self.reachable = True
            reason = f" {exc.message}" if exc.message else ""
            raise EngineError(f"OPA answered HTTP {exc.status}{reason}") from exc
        except aiohttp.ClientError as exc:
            self.reachable = False
            raise EngineError(f"OPA at {self.url} is unreachable: {_describe(exc)}") from exc
        except ValueError as exc:
            self.reachable = True
            raise EngineError("OPA answered with malformed JSON") from exc
        self.reachable = True
        if not isinstance(body, dict):
            raise EngineError("OPA answered with a JSON value that is not an object")
        if "result" not in body:
            raise EngineError(
                "data.maestro.decision.result is undefined in OPA (no bundle, or a wrong path)"
            )
        decision_id = body.get("decision_id")
        return EngineResult(
            value=body["result"],
            bundle=self._from_provenance(body.get("provenance")),
            engine_decision_id=decision_id if isinstance(decision_id, str) else None,
        )

    async def _query(self, client: AsyncOpaClient, document: dict[str, Any]) -> Any:
        try:
            return await self._query_once(client, document)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return await self._query_once(client, document)

    @staticmethod
    async def _query_once(client: AsyncOpaClient, document: dict[str, Any]) -> Any:
        return await client.query_rule(
            input_data=document,
            package_path=DECISION_PACKAGE,
            rule_name=DECISION_RULE,
            query_params={"provenance": "true"},
        )

    async def _reported_bundles(self, client: AsyncOpaClient) -> dict[str, dict[str, Any]]:
        try:
            status = await client.get_status()
        except aiohttp.ClientResponseError:
            # No status plugin: OPA answers 500; its manifests are still in data.system.bundles.
            pass
        else:
            return {
                name: {
                    "revision": entry["active_revision"],
                    "activated_at": entry.get("last_successful_activation"),
                    "error": entry.get("message") if entry.get("code") else None,
                }
                for name, entry in (status["result"].get("bundles") or {}).items()
                if entry.get("active_revision") is not None
            }
        body = await client.get_data("system/bundles")
        return {
            name: {"revision": entry["manifest"]["revision"]}
            for name, entry in (body["result"] or {}).items()
        }

    def _from_provenance(self, provenance: Any) -> BundleInfo:
        bundles = provenance.get("bundles") if isinstance(provenance, Mapping) else None
        revisions = {
            name: entry["revision"]
            for name, entry in (bundles or {}).items()
            if isinstance(entry, Mapping) and isinstance(entry.get("revision"), str)
        }
        revision = self._pick(revisions)
        if revision is None:
            return self._active or BundleInfo("unreported", "opa:unreported", _now())
        return self._observe(revision, None)

    def _pick(self, revisions: Mapping[str, str]) -> str | None:
        if self._bundle_name:
            return revisions.get(self._bundle_name)
        if len(revisions) == 1:
            return next(iter(revisions.values()))
        if not revisions:
            return None
        return ",".join(f"{name}={revisions[name]}" for name in sorted(revisions))

    def _observe(self, revision: str, activated_at: str | None) -> BundleInfo:
        active = self._active
        unchanged = activated_at is None or (
            active is not None and activated_at == active.activated_at
        )
        if active is not None and active.revision == revision and unchanged:
            return active
        info = BundleInfo(revision, f"opa:{revision}", activated_at or _now())
        self._active = info
        if self._on_activate is not None:
            self._on_activate(info)
        return info

    def _reread_token(self, client: AsyncOpaClient) -> None:
        if self._token_file is None:
            return
        try:
            token = read_token(self._token_file)
        except ValueError as exc:
            raise EngineError(f"{exc}; the previous token stays in use") from None
        if token != self._token:
            # The pooled session's default headers: every request from now on carries it.
            client._session.headers["Authorization"] = f"Bearer {token}"
            self._token = token

    def _require_client(self) -> AsyncOpaClient:
        if self._client is None:
            raise NotReady("the OPA client is not open")
        return self._client


def read_token(path: Path) -> str:
    """The bearer token in `path`, surrounding whitespace removed; ValueError if unusable."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read the OPA token file {path}: {reason}") from None
    if not token:
        raise ValueError(f"the OPA token file {path} is empty")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"the OPA token in {path} holds spaces or control characters")
    return token


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
