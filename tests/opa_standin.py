"""A stand-in for an OPA server, for tests and benchmarks: no OPA binary can be installed here.

It is a real HTTP/1.1 server on loopback (h11 over asyncio streams, in its own thread) that
speaks the parts of OPA's REST API the gate uses: `POST /v1/data/{path}` with `{"input"}`,
`result` omitted when undefined, `decision_id`, `provenance.bundles.<name>.revision`, ErrorV1
bodies, `GET /health?bundles`, `GET /v1/status` (or a 500 without the status plugin) and
`GET /v1/data/system/bundles`. Decisions are evaluated by OPA's own Go evaluator in process
(the gate's `opa-inprocess` engine, OPA v1.20's `v1/rego`) over the given bundle, so the answers
have OPA's semantics: only the server around them is a stand-in.

Set `misbehaviour` to make the data API fail the ways a real OPA, or the network to it, can.
Set `token` to make it answer as OPA run with `--authentication=token --authorization=basic`
and a `system.authz` policy that admits that bearer token: any request without it gets OPA's
401 `unauthorized`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from maestro_gate.core.errors import EngineError
from maestro_gate.engine.bundle import Bundle
from maestro_gate.engine.inprocess import InProcessOpaEngine

DECISION_PATH = "/v1/data/maestro/decision/result"


class Misbehaviour(StrEnum):
    """How the stand-in answers data API requests."""

    NONE = "none"
    ERROR = "error"  # 500 internal_error with errors[], as OPA answers a runtime eval error
    UNDEFINED = "undefined"  # 200 `{}` (plus decision_id): the document is undefined
    SLOW = "slow"  # a correct answer, `slow_s` seconds late
    DROP = "drop"  # the connection is closed without an answer
    GARBAGE = "garbage"  # 200 application/json whose body is truncated JSON
    NOT_FOUND = "not_found"  # 404 resource_not_found, as from a wrong path or a proxy


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"


class OpaStandIn:
    """An OPA stand-in on 127.0.0.1 serving one bundle through OPA's own evaluator."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        bundle_name: str = "maestro",
        status_plugin: bool = True,
        decision_logs: bool = True,
        slow_s: float = 2.0,
    ) -> None:
        self.bundle_name = bundle_name
        self.status_plugin = status_plugin
        self.decision_logs = decision_logs
        self.slow_s = slow_s
        self.misbehaviour = Misbehaviour.NONE
        self.token: str | None = None
        self.refused = 0
        self.connections = 0
        self.decisions = 0
        self.port = 0
        self.bundle_error: str | None = None
        self._bundle = bundle
        self._activated_at = _now()
        self._engine: InProcessOpaEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:39123`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def revision(self) -> str:
        """The revision of the bundle being served."""
        return self._bundle.revision

    def __enter__(self) -> OpaStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start serving, on the same port as before when restarted after `stop()`."""
        if self._thread is None:
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="opa-standin", daemon=True
            )
            self._thread.start()
            ready.wait()
            if self._failure is not None:
                self._thread.join()
                self._loop = self._thread = None
                raise RuntimeError("the OPA stand-in could not load its bundle") from self._failure
        self._call(self._listen())

    def stop(self) -> None:
        """Stop listening and drop every open connection: OPA is down."""
        self._call(self._unlisten())

    def close(self) -> None:
        """Stop for good and end the thread."""
        if self._loop is None or self._thread is None:
            return
        self.stop()
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None

    def activate(self, bundle: Bundle) -> None:
        """Serve a new bundle, as OPA does when its bundle plugin activates a revision."""
        self._call(self._activate(bundle))

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._activate(self._bundle))
        except BaseException as exc:  # starting must fail, not wait forever
            self._failure = exc
            self._loop.close()
            return
        finally:
            ready.set()
        self._loop.run_forever()

    async def _activate(self, bundle: Bundle) -> None:
        engine = InProcessOpaEngine(workers=2)
        await asyncio.to_thread(engine.load, bundle)
        old, self._engine = self._engine, engine
        self._bundle = bundle
        self._activated_at = _now()
        if old is not None:
            old.close()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._connection, sock=sock)

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()

    async def _shutdown(self) -> None:
        self._closing.set()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._engine is not None:
            self._engine.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(conn, reader)
                if request is None:
                    return
                response = await self._answer(request, body)
                if response is None:
                    return
                _write(conn, writer, response)
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()

    async def _answer(self, request: h11.Request, body: bytes) -> _Response | None:
        if self.token is not None:
            sent = dict(request.headers).get(b"authorization", b"").decode(errors="replace")
            if sent != f"Bearer {self.token}":
                self.refused += 1
                message = "request rejected by administrative policy"
                return _json(401, {"code": "unauthorized", "message": message})
        target = urlsplit(request.target.decode())
        query = parse_qs(target.query, keep_blank_values=True)
        method = request.method.decode()
        if target.path == "/health":
            return _json(200, {})
        if method == "GET" and target.path == "/v1/status":
            return self._status()
        if method == "GET" and target.path == "/v1/data/system/bundles":
            manifest = {"revision": self.revision, "roots": self._bundle.roots}
            return _json(200, {"result": {self.bundle_name: {"manifest": manifest}}})
        if method == "POST" and target.path.startswith("/v1/data"):
            return await self._data(target.path, query, body)
        return _json(404, {"code": "resource_not_found", "message": "no such route"})

    async def _data(self, path: str, query: dict[str, list[str]], body: bytes) -> _Response | None:
        self.decisions += 1
        misbehaviour = self.misbehaviour
        if misbehaviour is Misbehaviour.DROP:
            return None
        if misbehaviour is Misbehaviour.SLOW:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_s)
        if misbehaviour is Misbehaviour.GARBAGE:
            return _Response(200, b'{"result": {"decision": "allow", "reasons": [')
        if misbehaviour is Misbehaviour.NOT_FOUND:
            return _json(404, {"code": "resource_not_found", "message": f"{path} not found"})
        if misbehaviour is Misbehaviour.ERROR:
            return _json(500, _EVAL_ERROR)
        answer: dict[str, Any] = {}
        if self.decision_logs:
            answer["decision_id"] = str(uuid.uuid4())
        if query.get("provenance", ["false"])[0].lower() in ("", "true"):
            answer["provenance"] = {
                "version": "stand-in",
                "build_commit": "",
                "build_timestamp": "",
                "build_hostname": "",
                "bundles": {self.bundle_name: {"revision": self.revision}},
            }
        if misbehaviour is Misbehaviour.UNDEFINED or path != DECISION_PATH:
            return _json(200, answer)
        try:
            document = json.loads(body)["input"]
        except (ValueError, KeyError, TypeError):
            return _json(400, {"code": "invalid_parameter", "message": "body must be {input}"})
        assert self._engine is not None
        try:
            result = await self._engine.evaluate(document, timeout_s=10.0)
        except EngineError as exc:
            if "undefined" in exc.message:
                return _json(200, answer)
            error = {"code": "eval_builtin_error", "message": exc.message}
            return _json(500, {**_EVAL_ERROR, "errors": [error]})
        except Exception as exc:  # what OPA does with any other failure: 500 internal_error
            error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
            return _json(500, {**_EVAL_ERROR, "errors": [error]})
        answer["result"] = result.value
        return _json(200, answer)

    def _status(self) -> _Response:
        if not self.status_plugin:
            return _json(500, {"code": "internal_error", "message": "status plugin not enabled"})
        entry: dict[str, Any] = {
            "name": self.bundle_name,
            "active_revision": self.revision,
            "last_successful_activation": self._activated_at,
            "type": "snapshot",
        }
        if self.bundle_error:
            entry.update(code="bundle_error", message=self.bundle_error)
        bundles = {self.bundle_name: entry}
        return _json(200, {"result": {"labels": {"id": "stand-in"}, "bundles": bundles}})


_EVAL_ERROR = {
    "code": "internal_error",
    "message": "error(s) occurred while evaluating query",
    "errors": [
        {
            "code": "eval_conflict_error",
            "message": "complete rules must not produce multiple outputs",
            "location": {"file": "maestro/decision/decision.rego", "row": 31, "col": 1},
        }
    ],
}


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and request is None:
                return None, b""
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


def _write(conn: h11.Connection, writer: asyncio.StreamWriter, response: _Response) -> None:
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
    ]
    parts = (
        conn.send(h11.Response(status_code=response.status, headers=headers)),
        conn.send(h11.Data(data=response.body)),
        conn.send(h11.EndOfMessage()),
    )
    # One write: a response split over segments meets the client's delayed ACK (~40 ms each).
    writer.write(b"".join(part or b"" for part in parts))


def _json(status: int, body: Any) -> _Response:
    return _Response(status, json.dumps(body).encode())


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.opa_standin BUNDLE_DIR [PORT]`: serve until stdin closes or a signal."""
    import sys
    from pathlib import Path

    from maestro_gate.engine.bundle import read_bundle

    args = sys.argv[1:] if argv is None else argv
    standin = OpaStandIn(read_bundle(Path(args[0])))
    standin.port = int(args[1]) if len(args) > 1 else 0
    with standin:
        print(standin.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
