"""Ctrl-C and SIGTERM: one stop, however many signals arrive, and none lost while a run starts.

A terminal's Ctrl-C reaches every process of the foreground group, so the suites' process hears it from the
terminal and again from ``patchgate validate``, which forwards what it hears (a CI runner's SIGTERM often reaches
it alone). The first signal stops the run (KeyboardInterrupt: pytest tears the lab run down, which restores the
VMs, releases the leases and writes the ledger's end and a partial verdict); later ones must not break that
cleanup, so they are ignored, with one line saying so.

``patchgate validate`` starts the suites with SIGINT and SIGTERM *blocked*: a signal that arrives while the child
interpreter is still importing stays pending instead of printing a traceback from the middle of an import, and is
delivered the moment the suites unblock it (:func:`stop_once_on_signals`, at pytest's configure), before anything
touched the lab.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType, ModuleType
from typing import Any

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
REPEAT_QUIET = 1.0  # seconds: the same Ctrl-C delivered twice (terminal and forwarder) is not worth a line


_STOP_REQUESTED = threading.Event()


def stop_requested() -> bool:
    """A stop signal reached this process's handler: whatever error a step then raised, the run was interrupted
    (the KeyboardInterrupt may have come out of a library as another error, or not chained at all)."""
    return _STOP_REQUESTED.is_set()


def interrupted(exc: BaseException) -> bool:
    """``exc`` ends the run as an interrupt: Ctrl-C itself, an error caused by it, or any error once a stop signal
    was taken."""
    return caused_by_interrupt(exc) or stop_requested()


_LOGGING_FILE = logging.__file__
REDELIVER_AFTER = 0.01  # seconds: how soon a held-back stop signal is sent again


def _inside_logging(frame: FrameType | None) -> bool:
    """The interrupted code is inside the logging module, which takes its module lock (and a handler's lock) in
    ``_acquireLock(); try:`` form: a KeyboardInterrupt raised between the two leaves the lock held, and every other
    thread's next log line waits for ever; raised in the lock hooks logging runs around ``os.fork``, CPython
    reports it as unraisable and drops it, so the interrupt is lost too."""
    while frame is not None:
        if frame.f_code.co_filename == _LOGGING_FILE:
            return True
        frame = frame.f_back
    return False


class _Courier:
    """Sends a stop signal to this process again, a moment after it was held back, from a thread of its own
    (started with the handler: a signal handler must not start threads, it may have interrupted threading)."""

    def __init__(self) -> None:
        self._wanted = threading.Event()
        self._signum = int(signal.SIGINT)
        threading.Thread(target=self._run, name="patchgate-stop-courier", daemon=True).start()

    def again(self, signum: int) -> None:
        self._signum = signum
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            time.sleep(REDELIVER_AFTER)
            os.kill(os.getpid(), self._signum)


class StopOnce:
    """A signal handler: the first signal raises KeyboardInterrupt, later ones are ignored while the run cleans
    up (to force an end: SIGKILL, then ``patchgate reap``). The KeyboardInterrupt is never raised inside the
    logging module (:func:`_inside_logging`): the signal is then held back and sent again until it lands
    outside it."""

    def __init__(self) -> None:
        self.first_at: float | None = None
        self._told = False
        self._pending: int | None = None
        self._courier = _Courier()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
            _STOP_REQUESTED.set()
            self._pending = signum
        if self._pending is not None:
            if _inside_logging(frame):
                self._courier.again(self._pending)
                return
            self._pending = None
            raise KeyboardInterrupt(f"signal {signum}")
        if not self._told and now - self.first_at > REPEAT_QUIET:
            self._told = True
            print("patchgate: already stopping: restoring the VMs and releasing the leases (SIGKILL then "
                  "'patchgate reap' to force)", file=sys.stderr, flush=True)


def caused_by_interrupt(exc: BaseException) -> bool:
    """``exc`` is a KeyboardInterrupt, or an error raised because of one: Ctrl-C landing in a class body comes
    back as a RuntimeError ("Error calling __set_name__ ...") caused by it, and a library may wrap it too."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def import_held(module_name: str) -> ModuleType:
    """Import a module with SIGINT and SIGTERM held back until it is loaded: an interrupt that lands while a
    module builds its classes (dataclasses, pydantic models) can come out as some other error, not always chained
    to the KeyboardInterrupt (pydantic-core reports a SchemaError); held back, it arrives right after the import."""
    import importlib

    with stop_signals_blocked():
        return importlib.import_module(module_name)


def stop_once_on_signals() -> StopOnce | None:
    """Install :class:`StopOnce` for SIGINT and SIGTERM and unblock them (a signal pending since the process
    started is delivered now). Only the main thread can do this; elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = StopOnce()
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return handler


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM around starting a child, which inherits the blocked mask; this process gets what
    arrived meanwhile when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Forwarder:
    """``patchgate validate``'s handler: every SIGINT/SIGTERM is passed on to the suites' process, which restores
    the VMs and writes the verdict before validate reports. A signal that arrives before the child exists is kept
    and passed on once it does."""

    def __init__(self) -> None:
        self.child: Any = None  # subprocess.Popen
        self.pending: list[int] = []
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "Forwarder":
        self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        self.received += 1
        if self.child is None:
            self.pending.append(signum)
        elif self.child.poll() is None:
            self.child.send_signal(signum)

    def attach(self, child: Any) -> None:
        self.child = child
        for signum in self.pending:
            if child.poll() is None:
                child.send_signal(signum)
        self.pending.clear()
