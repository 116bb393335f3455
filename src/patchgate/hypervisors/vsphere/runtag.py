"""The "in use by run X" custom attribute on lab VMs, so leftovers of a killed run can be found.

The value is JSON: ``{"run": id, "host": hostname, "pid": pid, "started": iso8601}``; an empty value
means free. vCenter keeps one value per field and entity; govmomi's simulator appends a new value on each
set instead, so readers take the *last* value with the field's key, which is right for both.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pyVmomi import vim

from patchgate.errors import HypervisorError
from patchgate.hypervisors.vsphere.collector import retrieve, retrieve_one


@dataclass(frozen=True)
class RunTag:
    run: str
    host: str
    pid: int
    started: str

    @classmethod
    def for_this_process(cls, run_id: str) -> RunTag:
        return cls(run=run_id, host=socket.gethostname(), pid=os.getpid(),
                   started=datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, raw: str | None) -> RunTag | None:
        """None for empty or foreign values (someone else's text in the field is not ours to reap)."""
        if not raw:
            return None
        try:
            doc = json.loads(raw)
            return cls(run=str(doc["run"]), host=str(doc["host"]), pid=int(doc["pid"]),
                       started=str(doc["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def started_at(self) -> datetime | None:
        try:
            when = datetime.fromisoformat(self.started)
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)


class RunTagField:
    """One custom field definition (``settings.run_tag_field``) on VirtualMachine objects."""

    def __init__(self, si: vim.ServiceInstance, name: str) -> None:
        self._si = si
        self.name = name
        self._key: int | None = None

    def _manager(self) -> Any:
        manager = self._si.content.customFieldsManager
        if manager is None:
            raise HypervisorError("this vSphere endpoint has no custom attributes (a standalone ESXi host?); "
                                  "run tagging needs vCenter", step="mark-in-use")
        return manager

    def key(self, *, create: bool) -> int | None:
        """The field key (0 is a valid key), creating the definition when asked and absent."""
        if self._key is not None:
            return self._key
        manager = self._manager()
        for field in retrieve_one(self._si, manager, ["field"]).get("field") or []:
            if field.name == self.name and field.managedObjectType in (None, vim.VirtualMachine):
                self._key = int(field.key)
                return self._key
        if not create:
            return None
        try:
            field = manager.AddCustomFieldDef(name=self.name, moType=vim.VirtualMachine)
        except vim.fault.DuplicateName:  # another run created it meanwhile
            self._key = None
            return self.key(create=False)
        except vim.fault.NoPermission as exc:
            raise HypervisorError(f"cannot create custom attribute '{self.name}': missing privilege "
                                  f"{getattr(exc, 'privilegeId', '') or 'Global.ManageCustomFields'}",
                                  step="mark-in-use") from None
        self._key = int(field.key)
        return self._key

    def write(self, vm: vim.VirtualMachine, value: str) -> None:
        key = self.key(create=True)
        assert key is not None
        self._manager().SetField(entity=vm, key=key, value=value)

    def read_many(self, vms: list[vim.VirtualMachine]) -> dict[str, str]:
        """moref id -> current raw value ('' when unset)."""
        key = self.key(create=False)
        out = {vm._moId: "" for vm in vms}
        if key is None:
            return out
        for moid, props in retrieve(self._si, vim.VirtualMachine, vms, ["customValue"]).items():
            values = [cv for cv in props.get("customValue") or [] if cv.key == key]
            out[moid] = str(getattr(values[-1], "value", "") or "") if values else ""
        return out

    def read(self, vm: vim.VirtualMachine) -> str:
        return self.read_many([vm])[vm._moId]
