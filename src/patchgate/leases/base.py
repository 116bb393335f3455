"""VM leases: one run at a time may touch a VM, across threads, processes and machines.

A run reverts snapshots and installs updates; two runs on one VM would corrupt both verdicts. So a run leases
all its VMs before the first mutation. Acquisition is all-or-nothing and in sorted name order (every contender
takes VMs in the same order, so no two can each hold what the other waits for), waits with jittered exponential
backoff for a bounded time, and on timeout raises a LeaseError naming the VM and who holds it.

A lease is renewed from the moment it is taken until it is released, by a background thread of its
:class:`Lease`, also while the run still waits for its other VMs. Each VM is renewed on its own: losing one lease
never stops the renewal of the others.

The fencing rule (docs/vault.md): a holder may mutate a VM only while it can *prove* it still holds the lease.
Before every mutating step the lifecycle calls :meth:`Lease.confirm`, which renews the VM's record with the
backend's check-and-set (in Vault the CAS version is the lease's generation: a takeover writes a new version, so
the old holder's next write fails). A holder also counts its lease as lost once its own view of the expiry has
passed (``ttl`` after the start of its last successful renewal, less a safety margin), even when the backend is
unreachable, while a contender takes over only after ``expires`` has passed on its clock. A run that loses a lease
stops touching that VM, which is then broken: its verdict can only be inconclusive.

Backends only implement single-VM primitives (:class:`LeaseBackend`); the ordering, waiting, rollback, renewal
and fencing live here once.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from tenacity import RetryCallState, Retrying, retry_if_result, wait_random_exponential

from patchgate.errors import LeaseError, LeaseLost

log = logging.getLogger(__name__)

DEFAULT_TTL = 900.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
SAFETY = 0.8  # a holder trusts its lease for this share of the TTL after a renewal began (clock skew, latency)

LeaseWaitCallback = Callable[[str, str, float, float], None]
"""(vm, who holds it, seconds waited so far, timeout): called on every retry while a VM is busy."""
lease_waits: contextvars.ContextVar[LeaseWaitCallback | None] = contextvars.ContextVar("patchgate_lease_waits",
                                                                                         default=None)
"""Set by whoever shows progress (the pytest wiring) around a run's start; ``Lease.take`` reports to it."""


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
        """Extend a held lease; LeaseLost if someone else holds it now, LeaseError if the backend failed."""

    def release_one(self, handle: Any) -> None:
        """Give a lease back; must not disturb a lease someone else now holds."""


@runtime_checkable
class LeaseManager(Protocol):
    kind: str

    def acquire(self, vms: Sequence[str], run_id: str, *, timeout: float) -> "Lease":
        """Lease every VM or none, waiting up to ``timeout`` seconds."""

    def new_lease(self, run_id: str) -> "Lease":
        """An empty, renewing lease for ``run_id`` that :meth:`Lease.take` fills."""

    def list_leases(self) -> list[LeaseInfo]:
        """Current leases of the lab, for ``patchgate leases``."""

    def close(self) -> None:
        """Release backend resources (not the leases: those belong to their Lease objects)."""


class Lease:
    """VMs held by one run, renewed from the moment each is taken until it is given back. ``take`` fills it (all or
    nothing per call); ``confirm`` fences each mutating step; ``release`` is idempotent (a context manager too)."""

    def __init__(self, backend: LeaseBackend, holder: Holder, *, auto_renew: bool = True,
                 renew_interval: float | None = None) -> None:
        self.backend = backend
        self.holder = holder
        self._handles: dict[str, Any] = {}
        self._trusted_until: dict[str, float] = {}  # monotonic: when our own view of each lease runs out
        self._vm_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the dictionaries and the released flag
        self._released = False
        self._stop = threading.Event()
        self.lost: dict[str, str] = {}
        self._renewer: threading.Thread | None = None
        if auto_renew:
            self._interval = renew_interval if renew_interval is not None else max(0.5, backend.ttl / 3)
            self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                             name=f"lease-renewer-{holder.run_id}")
            self._renewer.start()

    @property
    def vms(self) -> list[str]:
        with self._lock:
            return sorted(self._handles)

    @property
    def run_id(self) -> str:
        return self.holder.run_id

    @property
    def released(self) -> bool:
        return self._released

    def holds(self, vm: str) -> bool:
        with self._lock:
            return vm in self._handles

    # ------------------------------------------------------------ take

    def take(self, vms: Sequence[str], *, timeout: float, stop: threading.Event | None = None) -> None:
        """Take every VM of ``vms`` in sorted order, or none of them (what this call took is given back when it
        fails). Waits up to ``timeout`` seconds in all; ``stop`` ends the wait early (Ctrl-C); the ``lease_waits``
        hook of the caller's context hears who holds a busy VM at every retry."""
        if timeout < 0:
            raise ValueError("timeout must be >= 0")
        names = sorted(set(vms))
        if not names:
            raise LeaseError("no VMs to lease")
        began = time.monotonic()
        deadline = began + timeout
        taken: list[str] = []
        progress = lease_waits.get()
        try:
            for vm in names:
                self._take_one(vm, names, began, deadline, timeout, stop, progress)
                taken.append(vm)
        except BaseException:
            for vm in reversed(taken):
                self._give_back(vm)
            raise
        log.info("run %s leased %s (%s backend)", self.run_id, ", ".join(names), self.backend.kind)

    def _take_one(self, vm: str, names: list[str], began: float, deadline: float, timeout: float,
                  stop: threading.Event | None, progress: LeaseWaitCallback | None) -> None:
        """Try until the VM is free, backing off exponentially with jitter (tenacity), so contenders do not
        retry in lockstep; give up at ``deadline`` naming the holder."""

        def holder(result: Busy) -> str:
            return result.current.describe() if result.current else "another run (holder unknown)"

        def waited(state: RetryCallState) -> float:
            result = state.outcome.result() if state.outcome else None
            now = time.monotonic()
            if progress is not None and isinstance(result, Busy):
                progress(vm, holder(result), now - began, timeout)
            left = deadline - now
            if left <= 0:
                raise LeaseError(f"VM {vm} is leased by {holder(result)}; gave up after {timeout:g}s "  # type: ignore[arg-type]
                                 f"(run {self.run_id} wanted {', '.join(names)})", vm=vm, step="lease")
            return min(left, backoff(state))

        def pause(seconds: float) -> None:
            if stop is not None:
                if stop.wait(seconds):
                    raise LeaseError(f"the run stopped while waiting for the lease of VM {vm}", vm=vm, step="lease")
            else:
                time.sleep(seconds)

        backoff = wait_random_exponential(multiplier=FIRST_BACKOFF, max=MAX_BACKOFF)
        retrying = Retrying(retry=retry_if_result(lambda result: isinstance(result, Busy)), wait=waited,
                            sleep=pause, reraise=True)
        retrying(self._try_take, vm)

    def _try_take(self, vm: str) -> Any:
        """One attempt: the VM's handle is kept (Busy is returned) unless release() ran meanwhile."""
        if self._released:
            raise LeaseError(f"lease of run {self.run_id} was released while it was still being taken", vm=vm)
        attempt = time.monotonic()
        result = self.backend.try_take(vm, self.holder)
        if isinstance(result, Busy):
            return result
        with self._lock:
            released = self._released
            if not released:
                self._handles[vm] = result
                self._trusted_until[vm] = attempt + self.backend.ttl * SAFETY
                self._vm_locks[vm] = threading.Lock()
        if released:  # release() ran meanwhile and did not see this one: give it back at once
            self.backend.release_one(result)
            raise LeaseError(f"lease of run {self.run_id} was released while it was still being taken", vm=vm)
        return result

    # ------------------------------------------------------------ renew and fence

    def confirm(self, vm: str) -> None:
        """Prove, now, that this run still holds ``vm`` (a check-and-set renewal), before a step that changes it.
        LeaseLost when it does not: the caller must not touch the VM."""
        self._renew_vm(vm, strict=True)

    def renew(self) -> None:
        """Renew every VM now; LeaseLost naming the first VM whose lease was lost."""
        if self._released:
            raise LeaseLost(f"lease of run {self.run_id} was already released")
        first: LeaseLost | None = None
        for vm in self.vms:
            try:
                self._renew_vm(vm, strict=True)
            except LeaseLost as exc:
                first = first or exc
        if first is not None:
            raise first

    def _renew_vm(self, vm: str, *, strict: bool) -> None:
        with self._lock:
            if self._released:
                raise LeaseLost(f"lease of run {self.run_id} was already released", vm=vm)
            if vm in self.lost:
                raise LeaseLost(self.lost[vm], vm=vm)
            handle = self._handles.get(vm)
            vm_lock = self._vm_locks.get(vm)
        if handle is None or vm_lock is None:
            raise LeaseLost(f"run {self.run_id} never held the lease of VM {vm}", vm=vm)
        with vm_lock:
            started = time.monotonic()
            try:
                self.backend.renew_one(handle)
            except LeaseLost as exc:
                raise self._mark_lost(vm, exc.detail) from None
            except LeaseError as exc:
                if time.monotonic() >= self._trusted_until.get(vm, 0.0):
                    raise self._mark_lost(vm, f"it could not be renewed within its TTL of {self.backend.ttl:g}s "
                                              f"({exc.detail})") from None
                if strict:  # a step may not start on a lease we cannot prove right now
                    raise LeaseError(f"cannot confirm the lease before changing the VM: {exc.detail}",
                                     vm=vm) from None
                log.warning("renewing the lease of VM %s failed (trying again; it is trusted for %.0fs more): %s",
                            vm, self._trusted_until[vm] - time.monotonic(), exc.detail)
                return
            self._trusted_until[vm] = started + self.backend.ttl * SAFETY

    def _mark_lost(self, vm: str, reason: str) -> LeaseLost:
        with self._lock:
            first = vm not in self.lost
            self.lost.setdefault(vm, f"lease lost: {reason}")
            message = self.lost[vm]
        if first:
            log.error("run %s: VM %s: %s; the run stops touching this VM and its verdict cannot be approve",
                      self.run_id, vm, message)
        return LeaseLost(message, vm=vm)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._interval):
            for vm in self.vms:
                if self._stop.is_set():
                    return
                if vm in self.lost:
                    continue
                try:
                    self._renew_vm(vm, strict=False)
                except LeaseError:
                    continue  # recorded in self.lost (and logged) by _mark_lost; the other VMs go on

    # ------------------------------------------------------------ release

    def _give_back(self, vm: str) -> None:
        with self._lock:
            handle = self._handles.pop(vm, None)
            self._trusted_until.pop(vm, None)
            vm_lock = self._vm_locks.pop(vm, None)
        if handle is None or vm_lock is None:
            return
        with vm_lock:  # waits for a renewal of this VM that is under way
            try:
                self.backend.release_one(handle)
            except LeaseError as exc:
                log.warning("could not give back the lease of VM %s (it expires on its own): %s", vm, exc.detail)

    def release(self) -> None:
        """Give every VM back (reverse order); safe to call twice."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=10)
        with self._lock:
            if self._released:
                return
            self._released = True
            names = sorted(self._handles, reverse=True)
        for vm in names:
            self._give_back(vm)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease({self.backend.kind}, run={self.run_id}, vms={self.vms}, released={self._released})"


def acquire_ordered(backend: LeaseBackend, vms: Sequence[str], run_id: str, *, timeout: float,
                    auto_renew: bool = True, renew_interval: float | None = None,
                    stop: threading.Event | None = None) -> Lease:
    """All-or-nothing acquisition in sorted order, bounded by ``timeout`` seconds overall; renewed from the first
    VM taken."""
    lease = Lease(backend, Holder(run_id=run_id), auto_renew=auto_renew, renew_interval=renew_interval)
    try:
        lease.take(vms, timeout=timeout, stop=stop)
    except BaseException:
        lease.release()
        raise
    return lease
