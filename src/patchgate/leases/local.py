"""Leases on one machine: ``fcntl.flock`` on a lock file per VM, plus a JSON sidecar naming the holder.

Why flock: the kernel drops the lock when the holding process dies, however it dies, so a crashed
run never leaves a VM locked. Locks belong to an open file description, so two threads of one process
that each open the file contend like two processes do. The sidecar (``<vm>.json``) exists only so
``patchgate leases`` can say who holds what; the lock file is the truth. A sidecar found when the lock
was free belongs to a holder that died: taking the VM then is logged as a takeover.

Lock files are never deleted (deleting a lock file while another process waits on it would let two
holders exist); sidecars are removed on release while the lock is still held.

This backend coordinates runs on one machine (or a local filesystem). Labs shared by several CI
runners should use Vault leases (``secrets.settings.leases_path``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from patchgate.atomic import atomic_write
from patchgate.errors import LeaseError, LeaseLost
from patchgate.leases.base import DEFAULT_TTL, Busy, Holder, Lease, LeaseInfo, acquire_ordered, now_utc
from patchgate.paths import state_dir

log = logging.getLogger(__name__)

STATE_DIR_ENV = "PATCHGATE_STATE_DIR"


def default_state_dir() -> Path:
    """$PATCHGATE_STATE_DIR, else ~/.cache/patchgate (shared with the run ledger and the twin's disks)."""
    return state_dir()


@dataclass
class _Handle:
    vm: str
    fd: int
    info: LeaseInfo
    open: bool = True


class LocalLeaseManager:
    kind = "local"

    def __init__(self, lab_name: str, *, state_dir: Path | None = None, ttl: float = DEFAULT_TTL) -> None:
        self.lab_name = lab_name
        self.directory = (state_dir or default_state_dir()) / "leases" / lab_name
        self.ttl = ttl
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LeaseError(f"cannot create the lease directory {self.directory}: {exc.strerror} "
                             f"(set {STATE_DIR_ENV} to a writable folder)") from None

    # ------------------------------------------------------------ paths

    def _lock_path(self, vm: str) -> Path:
        return self.directory / f"{vm}.lock"

    def _sidecar(self, vm: str) -> Path:
        return self.directory / f"{vm}.json"

    def _read_sidecar(self, vm: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._sidecar(vm).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write_sidecar(self, info: LeaseInfo) -> None:
        atomic_write(self._sidecar(info.vm), json.dumps(info.to_record()))

    # ------------------------------------------------------------ LeaseBackend

    def try_take(self, vm: str, holder: Holder) -> _Handle | Busy:
        try:
            fd = os.open(self._lock_path(vm), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LeaseError(f"cannot open lock file {self._lock_path(vm)}: {exc.strerror}", vm=vm) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            record = self._read_sidecar(vm)
            return Busy(LeaseInfo.from_record(record, vm=vm) if record else None)
        except OSError as exc:
            os.close(fd)
            raise LeaseError(f"cannot lock {self._lock_path(vm)}: {exc.strerror}", vm=vm) from None
        previous = self._read_sidecar(vm)
        if previous:
            old = LeaseInfo.from_record(previous, vm=vm, state="stale")
            log.warning("took over the lease of VM %s from %s: its lock was free, so that process is gone "
                        "(lab %s)", vm, old.describe(), self.lab_name)
        acquired = now_utc()
        info = LeaseInfo(vm=vm, run_id=holder.run_id, host=holder.host, pid=holder.pid, acquired=acquired,
                         expires=acquired + timedelta(seconds=self.ttl), lease_id=holder.lease_id)
        try:
            self._write_sidecar(info)
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise LeaseError(f"cannot write {self._sidecar(vm)}: {exc.strerror}", vm=vm) from None
        return _Handle(vm=vm, fd=fd, info=info)

    def renew_one(self, handle: _Handle) -> None:
        if not handle.open:
            raise LeaseLost("lease was released", vm=handle.vm)
        handle.info = replace(handle.info, expires=now_utc() + timedelta(seconds=self.ttl))
        try:
            self._write_sidecar(handle.info)
        except OSError as exc:  # the flock still holds; only the listing is stale
            log.warning("could not refresh %s: %s", self._sidecar(handle.vm), exc.strerror)

    def release_one(self, handle: _Handle) -> None:
        if not handle.open:
            return
        handle.open = False
        try:
            self._sidecar(handle.vm).unlink(missing_ok=True)  # while we still hold the lock
        finally:
            try:
                fcntl.flock(handle.fd, fcntl.LOCK_UN)
            finally:
                os.close(handle.fd)

    # ------------------------------------------------------------ LeaseManager

    def acquire(self, vms: list[str], run_id: str, *, timeout: float, auto_renew: bool = True) -> Lease:
        return acquire_ordered(self, vms, run_id, timeout=timeout, auto_renew=auto_renew)

    def new_lease(self, run_id: str) -> Lease:
        return Lease(self, Holder(run_id=run_id))

    def list_leases(self) -> list[LeaseInfo]:
        """Held leases, plus 'stale' ones whose holder died without releasing (free to take)."""
        result: list[LeaseInfo] = []
        for lock in sorted(self.directory.glob("*.lock")):
            vm = lock.stem
            record = self._read_sidecar(vm)
            if record is None:
                continue
            state = "held" if self._locked(lock) else "stale"
            result.append(LeaseInfo.from_record(record, vm=vm, state=state))
        return result

    def _locked(self, lock: Path) -> bool:
        """Probe with a non-blocking shared lock: it fails only while someone holds the exclusive lock."""
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing to close: each Lease owns its file descriptors."""
