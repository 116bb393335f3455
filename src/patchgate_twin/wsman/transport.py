"""The transport of one twin VM's WinRM listener: HTTP/1.1 (HTTPS with a TLS context) on 127.0.0.1 on its own
ephemeral port, Basic authentication, request framing, the injected network round trip, and the ways a faulty
listener misbehaves (a request held unanswered, a connection reset). What a request means is the endpoint's
business (patchgate_twin.wsman.endpoint): the transport hands it the body and sends back its status and body.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from patchgate.remoting.serving import ServingThread

log = logging.getLogger(__name__)

CredentialSource = Callable[[], tuple[str, str]]
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="WSMAN"'}


class Reply(Exception):
    """Short-circuit a request with an HTTP status and body."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        super().__init__(status)


class Drop(Exception):
    """Reset the TCP connection without answering."""


class Hang(Exception):
    """Hold the request unanswered until the client gives up (or the listener stops)."""


class Application(Protocol):
    """What the transport serves: one WSMan request body in, an HTTP status and body out."""

    vm: str

    def handle(self, data: bytes) -> tuple[int, bytes]: ...

    def count(self, key: str, n: int = 1) -> None: ...


def basic_auth_ok(header: str | None, credentials: CredentialSource) -> bool:
    """Whether an ``Authorization: Basic`` header names the account (user case-insensitive, as Windows does)."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected_user, expected_password = credentials()
    return (hmac.compare_digest(user.lower().encode(), expected_user.lower().encode())
            and hmac.compare_digest(password.encode(), expected_password.encode()))


class HttpListener:
    """Serves ``app`` on 127.0.0.1: ``start()`` returns the port; ``stop()`` ends every request."""

    def __init__(self, app: Application, credentials: CredentialSource, *, stopping: threading.Event,
                 latency: float = 0.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.credentials = credentials
        self.stopping = stopping
        self.latency = latency
        self.ssl_context = ssl_context
        self._server: _Server | None = None
        self._serving: ServingThread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"WSMan endpoint for {self.app.vm} is not running")
        return int(self._server.server_address[1])

    def start(self) -> int:
        if self._server is None:
            self._server = _Server(self)
            self._serving = ServingThread(self._server, f"twin-wsman-{self.app.vm}")
            self._serving.start()
        return self.port

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
        if self._server is not None:
            self._server.server_close()
        self._server = None
        self._serving = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # Without this each response waits ~40 ms for the client's delayed ACK.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.listener.ssl_context is not None:
            conn = self.listener.ssl_context.wrap_socket(conn, server_side=True)
        return conn, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("wsman %s: " + format, self.server.listener.app.vm, *args)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        listener = self.server.listener
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if listener.latency:
            time.sleep(listener.latency)  # the injected network round trip, for benchmarks
        try:
            if not basic_auth_ok(self.headers.get("Authorization"), listener.credentials):
                listener.app.count("auth_failures")
                raise Reply(401, b"", BASIC_CHALLENGE)
            status, body = listener.app.handle(data)
            self._send(status, body)
        except Reply as reply:
            self._send(reply.status, reply.body, reply.headers)
        except Hang:
            self._hang()
        except Drop:
            self._reset()

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _hang(self) -> None:
        """Answer nothing until the client closes its side or the listener stops (a real hung listener)."""
        stopping = self.server.listener.stopping
        sock = self.connection
        while not stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break
                except (OSError, ssl.SSLError):
                    break
        self._reset()

    def _reset(self) -> None:
        """Drop the connection with a TCP RST, as a crashed WinRM service or a middlebox would."""
        self.close_connection = True
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            # The handler's file objects hold references to the socket; close the descriptor itself.
            os.close(sock.detach())
        except OSError:
            pass
