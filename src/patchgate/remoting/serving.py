"""A socketserver's request loop on a thread of its own that stops at once.

``serve_forever`` polls a flag every ``poll_interval`` seconds, so its ``shutdown()`` waits up to that long: the
end of every run waited for its content server that way. Here the loop waits on the listener and on a wake-up
socket together, and ``stop()`` wakes it.
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import threading

_REQUEST, _STOP = "request", "stop"


class ServingThread:
    """``start()`` serves ``server``'s requests on a daemon thread named ``name``; ``stop()`` ends the loop and
    returns once it has (the caller still closes the server)."""

    def __init__(self, server: socketserver.BaseServer, name: str) -> None:
        self._server = server
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def serving(self) -> bool:
        """The loop still runs (it accepts the listener's connections)."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ, _REQUEST)  # type: ignore[arg-type]
            selector.register(self._wake_read, selectors.EVENT_READ, _STOP)
            while True:
                ready = selector.select()
                if any(key.data == _STOP for key, _ in ready):
                    return
                self._server.handle_request()  # readable: it accepts at once (a handler thread serves it)
                self._server.service_actions()  # what serve_forever calls after each round

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the loop and wait (up to ``timeout``) for it to end; safe to call twice."""
        if self._wake_write.fileno() != -1:
            self._wake_write.send(b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._wake_read.close()
        self._wake_write.close()
