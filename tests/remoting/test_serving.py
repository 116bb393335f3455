"""The request loop the content server and the twin's WSMan listeners run on: it serves, and stop() ends it (a
real HTTP server on 127.0.0.1, real connections)."""

from __future__ import annotations

import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from patchgate.remoting.serving import ServingThread


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


@pytest.fixture
def server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    yield server
    server.server_close()


def test_serves_one_request_after_another_and_stops(server: ThreadingHTTPServer) -> None:
    serving = ServingThread(server, "test-serving")
    serving.start()
    port = server.server_address[1]
    assert [_get(port, f"/{n}") for n in range(5)] == [f"/{n}".encode() for n in range(5)]
    assert serving.serving
    serving.stop()
    assert not serving.serving  # the loop has ended when stop() returns
    serving.stop()  # a second stop is harmless
    server.server_close()
    with pytest.raises(OSError):
        _get(port, "/after")


def test_stop_before_any_request_ends_the_loop(server: ThreadingHTTPServer) -> None:
    serving = ServingThread(server, "test-serving-idle")
    serving.start()
    serving.stop()
    assert not serving.serving
