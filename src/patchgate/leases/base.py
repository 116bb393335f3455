"""VM leases: one run at a time may touch a VM, across threads, processes and machines.

A run reverts snapshots and installs updates; two runs on one VM would corrupt both verdicts. So a
run leases all its VMs before the first mutation. Acquisition is all-or-nothing and in sorted name
order (every contender takes VMs in the same order, so no two can each hold what the other waits for),
waits with jittered exponential backoff for a bounded time, and on timeout raises a LeaseError naming
the VM and who holds it. A held lease is renewed by a background thread while the run is alive; a
lease whose holder stopped renewing expires and may be taken over (logged as a takeover).

Backends only implement single-VM primitives (:class:`LeaseBackend`); the ordering, waiting,
rollback and renewal live here once.
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from patchgate.errors import LeaseError

log = logging.getLogger(__name__)

DEFAULT_TTL = 900.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0

LeaseWaitCallback = Callable[[str, str, float, float], None]
"""(vm, who holds it, seconds waited so far, timeout): called on every retry while a VM is busy."""
lease_waits: contextvars.ContextVar[LeaseWaitCallback | None] = contextvars.ContextVar("patchgate_lease_waits",
                                                                                         default=None)
"""Set by whoever shows progress (the pytest wiring) around a run's start; ``acquire_ordered`` reports to it."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a lease: enough to find the run and the process behind it."""

    run_id: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    lease_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid})"


@dataclass(frozen=True)
class LeaseInfo:
    """One VM's lease as ``patchgate leases`` shows it."""

    vm: str
    run_id: str
    host: str
    pid: int
    acquired: datetime
    expires: datetime | None
    state: str = "held"  # held | expired | stale (holder gone, lock free)
    lease_id: str = ""

    def describe(self) -> str:
        until = f", expires {self.expires.isoformat(timespec='seconds')}" if self.expires else ""
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, {self.state}{until})"

    def to_record(self) -> dict[str, Any]:
        return {"vm": self.vm, "run_id": self.run_id, "host": self.host, "pid": self.pid,
                "acquired": self.acquired.timestamp(),
                "expires": self.expires.timestamp() if self.expires else None,
                "lease_id": self.lease_id}

    @classmethod
    def from_record(cls, record: dict[str, Any], *, vm: str, state: str = "held") -> "LeaseInfo":
        expires = record.get("expires")
        return cls(vm=vm, run_id=str(record.get("run_id", "?")), host=str(record.get("host", "?")),
                   pid=int(record.get("pid") or 0), acquired=_dt(record.get("acquired")),
                   expires=_dt(expires) if expires is not None else None, state=state,
                   lease_id=str(record.get("lease_id", "")))


def _dt(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (TypeError, ValueError):
        return datetime.fromtimestamp(0, tz=timezone.utc)


def now_utc() -> datetime:
    return datetime.now(tz=timezone.utc)


class Busy:
    """A VM is held by someone else (``current`` is None when a race hid who)."""

    def __init__(self, current: LeaseInfo | None) -> None:
        self.current = current


class LeaseBackend(Protocol):
    """Single-VM primitives a storage backend provides."""

    kind: str
    ttl: float

    def try_take(self, vm: str, holder: Holder) -> Any | Busy:
        """Take the VM now or return Busy; never waits. The returned handle is opaque."""

    def renew_one(self, handle: Any) -> None:
        """Extend a held lease; LeaseError if it was lost."""

    def release_one(self, handle: Any) -> None:
        """Give a lease back; must not disturb a lease someone else now holds."""


@runtime_checkable
class LeaseManager(Protocol):
    kind: str

    def acquire(self, vms: Sequence[str], run_id: str, *, timeout: float) -> "Lease":
        """Lease every VM or none, waiting up to ``timeout`` seconds."""

    def list_leases(self) -> list[LeaseInfo]:
        """Current leases of the lab, for ``patchgate leases``."""

    def close(self) -> None:
        """Release backend resources (not the leases: those belong to their Lease objects)."""


class Lease:
    """A set of VMs held together. Release is idempotent; use as a context manager."""

    def __init__(self, backend: LeaseBackend, holder: Holder, handles: dict[str, Any], *,
                 auto_renew: bool = True, renew_interval: float | None = None) -> None:
        self.backend = backend
        self.holder = holder
        self._handles = handles
        self._lock = threading.Lock()
        self._released = False
        self._stop = threading.Event()
        self.lost: dict[str, str] = {}
        self._renewer: threading.Thread | None = None
        if auto_renew:
            interval = renew_interval if renew_interval is not None else max(0.5, backend.ttl / 3)
            self._renewer = threading.Thread(target=self._renew_loop, args=(interval,), daemon=True,
                                             name=f"lease-renewer-{holder.run_id}")
            self._renewer.start()

    @property
    def vms(self) -> list[str]:
        return sorted(self._handles)

    @property
    def run_id(self) -> str:
        return self.holder.run_id

    @property
    def released(self) -> bool:
        return self._released

    def renew(self) -> None:
        """Extend every VM's lease now; LeaseError naming the VM when one was lost."""
        with self._lock:
            if self._released:
                raise LeaseError(f"lease of run {self.run_id} was already released")
            for vm in self.vms:
                if vm in self.lost:
                    raise LeaseError(self.lost[vm], vm=vm)
                try:
                    self.backend.renew_one(self._handles[vm])
                except LeaseError as exc:
                    self.lost[vm] = exc.detail
                    raise exc.at(vm=vm) from None

    def _renew_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LeaseError as exc:
                if self._released:
                    return
                log.error("lease renewal failed for run %s: %s", self.run_id, exc)
                if self.lost:
                    return  # a lost lease stays lost; the run must stop touching that VM

    def release(self) -> None:
        """Give every VM back (reverse order); safe to call twice."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=10)
        with self._lock:
            if self._released:
                return
            self._released = True
            errors: list[str] = []
            for vm in reversed(self.vms):
                try:
                    self.backend.release_one(self._handles[vm])
                except LeaseError as exc:
                    errors.append(f"{vm}: {exc.detail}")
        if errors:
            log.warning("some leases of run %s could not be released cleanly (they expire on their own): %s",
                        self.run_id, "; ".join(errors))

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease({self.backend.kind}, run={self.run_id}, vms={self.vms}, released={self._released})"


def acquire_ordered(backend: LeaseBackend, vms: Sequence[str], run_id: str, *, timeout: float,
                    auto_renew: bool = True, renew_interval: float | None = None) -> Lease:
    """All-or-nothing acquisition in sorted order, bounded by ``timeout`` seconds overall."""
    if timeout < 0:
        raise ValueError("timeout must be >= 0")
    names = sorted(set(vms))
    if not names:
        raise LeaseError("no VMs to lease")
    holder = Holder(run_id=run_id)
    began = time.monotonic()
    deadline = began + timeout
    handles: dict[str, Any] = {}
    report_wait = lease_waits.get()
    try:
        for vm in names:
            delay = FIRST_BACKOFF
            while True:
                result = backend.try_take(vm, holder)
                if not isinstance(result, Busy):
                    handles[vm] = result
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    who = result.current.describe() if result.current else "another run (holder unknown)"
                    raise LeaseError(f"VM {vm} is leased by {who}; gave up after {timeout:g}s "
                                     f"(run {run_id} wanted {', '.join(names)})", vm=vm, step="lease")
                if report_wait is not None:
                    report_wait(vm, result.current.describe() if result.current else "another run (holder unknown)",
                                time.monotonic() - began, timeout)
                # jitter spreads contenders out so they do not retry in lockstep
                time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, MAX_BACKOFF)
    except BaseException:
        for vm in reversed(list(handles)):
            try:
                backend.release_one(handles[vm])
            except LeaseError as exc:
                log.warning("could not roll back lease of VM %s: %s", vm, exc)
        raise
    log.info("run %s leased %s (%s backend)", run_id, ", ".join(names), backend.kind)
    return Lease(backend, holder, handles, auto_renew=auto_renew, renew_interval=renew_interval)
