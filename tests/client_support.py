"""Servers on loopback for the client tests: the real gate, and small servers that misbehave."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from maestro_gate.config import Settings
from tests.auth_support import gate_settings
from tests.test_hot_reload import serving


@dataclass
class Gate:
    """A real gate served by uvicorn on loopback: its URL, settings and each principal's API key."""

    url: str
    settings: Settings
    keys: dict[str, str]


@contextmanager
def real_gate(tmp_path: Path, **overrides: Any) -> Iterator[Gate]:
    """The auth tests' gate (tests/auth_support.py: its bundle and principals) on loopback."""
    settings, headers = gate_settings(tmp_path, **overrides)
    with serving(settings) as url:
        yield Gate(url, settings, {name: h["X-API-Key"] for name, h in headers.items()})


@dataclass(frozen=True)
class Answer:
    """What a misbehaving server sends: a status, a body, headers, after a delay (seconds)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering
    drip_s: float = 0.0  # send the body a byte at a time, this long apart

    @staticmethod
    def json(status: int, body: Any, **headers: str) -> Answer:
        """An answer with a JSON body."""
        return Answer(
            status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
        )


Respond = Callable[[str, str, bytes], Answer]
"""Given (method, path, body), what to answer."""


@dataclass
class Misbehaving:
    """A loopback HTTP server answering as `respond` says; it records every request it got."""

    url: str
    received: list[tuple[str, str, bytes, dict[str, str]]]
    peers: list[tuple[str, int]] = field(default_factory=list)  # the client end of each request


@contextmanager
def misbehaving(respond: Respond, tls: ssl.SSLContext | None = None) -> Iterator[Misbehaving]:
    """Serve `respond` on a free loopback port until the block ends (over TLS with `tls`)."""
    received: list[tuple[str, str, bytes, dict[str, str]]] = []
    peers: list[tuple[str, int]] = []
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            received.append((self.command, self.path, body, dict(self.headers.items())))
            peers.append(self.client_address[:2])
            answer = respond(self.command, self.path, body)
            if answer.delay_s:
                stop.wait(answer.delay_s)
            if answer.drop:
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if not answer.drip_s:
                self.wfile.write(answer.body)
                return
            for byte in answer.body:
                if stop.wait(answer.drip_s):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        do_GET = do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Misbehaving(f"{scheme}://127.0.0.1:{server.server_address[1]}", received, peers)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


def decision_body(decision: str = "allow", **changes: Any) -> dict[str, Any]:
    """A well-formed `/v1/decide` answer (what the gate sends), with `changes` applied."""
    body: dict[str, Any] = {
        "decision_id": "00000000-0000-4000-8000-000000000000",
        "decision": decision,
        "reasons": [],
        "obligations": [],
        "layers": {},
        "policy": {"revision": "r1", "digest": "d", "engine": "embedded"},
        "audit": {"index": 0, "leaf_hash": "00"},
        "mode": "enforce",
    }
    body.update(changes)
    return body


def self_signed(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a fresh self-signed 127.0.0.1 cert."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
