"""Leases in Vault KV v2, for labs shared by several CI runners or machines.

Each VM's lease is the secret ``<kv_mount>/<leases_path>/<lab>/<vm>`` holding
``{state, run_id, host, pid, lease_id, acquired, expires, ttl}``. Every write uses KV v2
check-and-set, so of two contenders writing the same version only one succeeds:

* take a free VM: ``cas=0`` (the path does not exist yet) or ``cas=<current version>`` when the
  current record is ``released`` or past ``expires`` (the latter is logged as a takeover);
* renew: rewrite our record with a later ``expires`` and ``cas=<our version>``; a mismatch means
  someone took the VM over after our lease expired, and the lease is reported lost;
* release: write a ``released`` record with ``cas=<our version>``. Releasing by writing (not by
  deleting metadata) keeps the last holders in the version history for auditing and needs only
  create/update on the leases path; if the cas fails the VM is someone else's now and is left alone.

Expiry compares ``expires`` (written from the holder's clock) with the reader's clock, so runners need
NTP-synchronised clocks; the TTL (``lease_ttl``, default 900 s) dwarfs ordinary skew.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import hvac.exceptions as hv

from patchgate.config.lab import VaultSecretsSettings
from patchgate.errors import LeaseError, LeaseLost, SecretsError
from patchgate.leases.base import Busy, Holder, Lease, LeaseInfo, acquire_ordered
from patchgate.secrets.vault_session import VaultSession, translate

log = logging.getLogger(__name__)

HELD = "held"
RELEASED = "released"


@dataclass
class _Handle:
    vm: str
    path: str
    version: int
    record: dict[str, Any]
    open: bool = True


def _cas_mismatch(exc: BaseException) -> bool:
    return isinstance(exc, hv.InvalidRequest) and "check-and-set" in str(exc)


class VaultLeaseManager:
    kind = "vault"

    def __init__(self, lab_name: str, settings: VaultSecretsSettings, *, session: VaultSession | None = None,
                 ttl: float | None = None) -> None:
        if not settings.leases_path:
            raise LeaseError("Vault leases need secrets.settings.leases_path in the lab file")
        self.lab_name = lab_name
        self.settings = settings
        self.mount = settings.kv_mount
        self.prefix = f"{settings.leases_path.strip('/')}/{lab_name}"
        self.ttl = float(ttl if ttl is not None else settings.lease_ttl)
        self._owns_session = session is None
        try:
            self.session = session or VaultSession(settings)
        except SecretsError as exc:  # a login failure is a lease failure from the caller's view
            raise LeaseError(f"cannot open Vault for leases: {exc.detail}") from None
        self.kv = self.session.client.secrets.kv.v2

    def _path(self, vm: str) -> str:
        return f"{self.prefix}/{vm}"

    def _fail(self, exc: BaseException, path: str, action: str, vm: str | None = None) -> LeaseError:
        return translate(exc, address=self.session.address, path=f"{self.mount}/{path}", action=action,
                         error=LeaseError, vm=vm)

    # ------------------------------------------------------------ reads

    def _read(self, vm: str) -> tuple[int, dict[str, Any] | None]:
        """(current version, record) — (0, None) when the VM was never leased."""
        path = self._path(vm)
        for _attempt in range(5):
            try:
                reply = self.kv.read_secret_version(path, mount_point=self.mount,
                                                    raise_on_deleted_version=True)
            except hv.InvalidPath:
                deleted = self._deleted_version(vm)
                if deleted is None:
                    continue  # a first lease was written between our two reads: read it
                return deleted, None
            except Exception as exc:  # noqa: BLE001 - translated
                raise self._fail(exc, path, "read the lease of", vm) from None
            data = reply["data"]
            return int(data["metadata"]["version"]), data.get("data") or {}
        raise LeaseError(f"the lease record at '{self.mount}/{path}' keeps changing; gave up reading it",
                         vm=vm)

    def _deleted_version(self, vm: str) -> int | None:
        """After a 404 on the data: 0 if the path never existed, the current version if someone deleted
        it by hand (a deleted lease counts as free), None if it exists after all (a racing writer)."""
        path = self._path(vm)
        try:
            meta = self.kv.read_secret_metadata(path, mount_point=self.mount)["data"]
        except hv.InvalidPath:
            return 0
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._fail(exc, path, "read the lease metadata of", vm) from None
        current = int(meta.get("current_version") or 0)
        version = (meta.get("versions") or {}).get(str(current)) or {}
        if current == 0 or version.get("deletion_time") or version.get("destroyed"):
            return current
        return None

    def _write(self, vm: str, record: dict[str, Any], cas: int) -> int | None:
        """Write with check-and-set; the new version, or None when another writer won the race."""
        path = self._path(vm)
        try:
            reply = self.kv.create_or_update_secret(path, record, cas=cas, mount_point=self.mount)
        except Exception as exc:  # noqa: BLE001 - translated
            if _cas_mismatch(exc):
                return None
            raise self._fail(exc, path, "write the lease of", vm) from None
        return int(reply["data"]["version"])

    # ------------------------------------------------------------ LeaseBackend

    def _record(self, holder: Holder, vm: str, acquired: float, state: str = HELD) -> dict[str, Any]:
        now = time.time()
        return {"state": state, "vm": vm, "run_id": holder.run_id, "host": holder.host, "pid": holder.pid,
                "lease_id": holder.lease_id, "acquired": acquired, "expires": now + self.ttl,
                "ttl": self.ttl}

    def try_take(self, vm: str, holder: Holder) -> _Handle | Busy:
        version, current = self._read(vm)
        if current and current.get("state") == HELD:
            expires = float(current.get("expires") or 0)
            if expires > time.time():
                return Busy(LeaseInfo.from_record(current, vm=vm))
        now = time.time()
        record = self._record(holder, vm, now)
        new_version = self._write(vm, record, cas=version)
        if new_version is None:
            return Busy(None)  # someone else wrote first; the caller retries and will see who
        if current and current.get("state") == HELD:
            old = LeaseInfo.from_record(current, vm=vm, state="expired")
            log.warning("took over the expired lease of VM %s from %s (lab %s, Vault %s)", vm, old.describe(),
                        self.lab_name, self.session.address)
        return _Handle(vm=vm, path=self._path(vm), version=new_version, record=record)

    def renew_one(self, handle: _Handle) -> None:
        if not handle.open:
            raise LeaseLost("lease was released", vm=handle.vm)
        record = {**handle.record, "expires": time.time() + self.ttl}
        new_version = self._write(handle.vm, record, cas=handle.version)
        if new_version is None:
            _version, current = self._read(handle.vm)
            who = LeaseInfo.from_record(current, vm=handle.vm).describe() if current else "nobody"
            raise LeaseLost(f"it expired and is now held by {who}", vm=handle.vm)
        handle.version, handle.record = new_version, record

    def release_one(self, handle: _Handle) -> None:
        if not handle.open:
            return
        handle.open = False
        record = {**handle.record, "state": RELEASED, "expires": time.time()}
        if self._write(handle.vm, record, cas=handle.version) is None:
            log.warning("lease of VM %s changed hands before release (it had expired); left to its new "
                        "holder",
                        handle.vm)

    def release_for_dead_holder(self, vm: str, lease_id: str, released_by: str) -> None:
        """Write a 'released' record over a dead holder's lease (``patchgate reap``), with check-and-set on the
        version read: a lease someone else took meanwhile is left alone."""
        version, record = self._read(vm)
        if not record or record.get("lease_id") != lease_id:
            return
        released = {**record, "state": RELEASED, "expires": time.time(), "released_by": released_by}
        if self._write(vm, released, cas=version) is None:
            raise LeaseError("the lease changed while it was being removed", vm=vm)

    # ------------------------------------------------------------ LeaseManager

    def acquire(self, vms: list[str], run_id: str, *, timeout: float, auto_renew: bool = True) -> Lease:
        return acquire_ordered(self, vms, run_id, timeout=timeout, auto_renew=auto_renew)

    def new_lease(self, run_id: str) -> Lease:
        return Lease(self, Holder(run_id=run_id))

    def list_leases(self) -> list[LeaseInfo]:
        try:
            keys = self.kv.list_secrets(self.prefix, mount_point=self.mount)["data"]["keys"]
        except hv.InvalidPath:
            return []
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._fail(exc, self.prefix, "list leases under") from None
        result: list[LeaseInfo] = []
        now = time.time()
        for vm in sorted(k for k in keys if not k.endswith("/")):
            _version, record = self._read(vm)
            if not record or record.get("state") != HELD:
                continue
            state = "held" if float(record.get("expires") or 0) > now else "expired"
            result.append(LeaseInfo.from_record(record, vm=vm, state=state))
        return result

    def close(self) -> None:
        if self._owns_session:
            self.session.close()
