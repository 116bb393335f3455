"""The twin's Hyper-V host: a WSMan/PSRP endpoint (the kind the twin's guests answer on) whose pipelines are the
Hyper-V provider's op scripts, answered from a model of the host over the twin's own VMs.

The model keeps what a Hyper-V host knows and a guest does not: each VM's VMId, its checkpoints (id, type,
creation time), its Notes, the heartbeat and the KVP addresses it reports, and the restore jobs. Power and the
guest OS are the twin lab's (``TwinLab.revert/power_on/power_off/reboot``), so a restore seen here is the same
revert the guest sees. The Hyper-V faults (``HYPERV_FAULTS``) are injected here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from patchgate.errors import LabError
from patchgate.secrets.base import credential_pair
from patchgate_twin import filecopy
from patchgate_twin.shell import PipelineOutput, Statement, TwinFault

log = logging.getLogger(__name__)

MARKER_RE = re.compile(r"^\s*#\s*patchgate-op:\s*((?:hyperv|psdirect)-[a-z-]+)")
NAMESPACE = uuid.UUID("5d1f0a8e-8c1e-4d5e-9c39-6b5c7d2a7f10")
GUEST_ADDRESSES = ["127.0.0.1", "fe80::215:5dff:fe00:1"]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class HostVm:
    """What the host knows of one VM besides its guest."""

    name: str
    vm_id: str
    host: str  # the Hyper-V host it lives on
    checkpoints: dict[str, dict[str, str]]
    notes: str = ""
    lookups: int = 0  # checkpoint lookups (fault 'checkpoint-missing')
    restores: int = 0  # restore jobs (fault 'restore-fails')
    restarted: bool = False  # a restart was asked: the next heartbeat poll sees no contact
    lock: threading.Lock = field(default_factory=threading.Lock)


class TwinHypervHost:
    """ScriptHost for the twin's Hyper-V host endpoints (one per host of the lab)."""

    def __init__(self, twin: Any, host_of: Callable[[str], str], *, checkpoint_type: str = "Standard",
                 on_guest_restart: Callable[[str], object] | None = None, guest_shell: Any = None,
                 guest_credentials: Callable[[str], Any] | None = None) -> None:
        self.twin = twin
        self.lab = twin.lab
        self._on_guest_restart = on_guest_restart
        self.guest_shell = guest_shell  # TwinShell: what PowerShell Direct runs in a guest
        self._guest_credentials = guest_credentials  # what a guest accepts at a PowerShell Direct logon
        self.host_files: dict[str, dict[str, bytes]] = {}  # per host: files copied to it (on their way to a guest)
        self.direct: set[str] = set()  # VMIds with an open PowerShell Direct session
        self.vms: dict[str, HostVm] = {}
        kind = "Production" if checkpoint_type == "production" else "Standard"
        for spec in [*self.lab.vms, *self.lab.control_vms]:
            vm_id = str(uuid.uuid5(NAMESPACE, f"{self.lab.name}/{spec.name}"))
            checkpoint = {"Id": str(uuid.uuid5(NAMESPACE, f"{vm_id}/{spec.snapshot}")), "Name": spec.snapshot,
                          "SnapshotType": kind, "CreationTime": "2025-10-14T18:00:00.0000000Z"}
            self.vms[vm_id] = HostVm(spec.name, vm_id, host_of(spec.name), {spec.snapshot: checkpoint})
        self._ops: dict[str, Callable[[str, dict[str, Any]], Any]] = {
            "hyperv-host": self._host, "hyperv-find": self._find, "hyperv-checkpoints": self._checkpoints,
            "hyperv-state": self._state, "hyperv-restore": self._restore, "hyperv-start": self._start,
            "hyperv-restart": self._restart, "hyperv-tag": self._tag,
            "hyperv-checkpoint-create": self._checkpoint_create,
            "psdirect-open": self._direct_open, "psdirect-copy": self._direct_copy, "psdirect-close": self._direct_close,
        }
        self.pipelines = 0

    @property
    def operations(self) -> set[str]:
        """The op scripts this host answers (``psdirect-run`` is answered by the guest it names)."""
        return {*self._ops, "psdirect-run"}

    def vm_id(self, name: str) -> str:
        """The VMId the twin's host gives VM ``name`` (stable for a lab and VM name)."""
        return next(vm.vm_id for vm in self.vms.values() if vm.name == name)

    # ------------------------------------------------------------ ScriptHost

    def run_pipeline(self, host: str, statements: list[Statement], input_data: list[Any]) -> PipelineOutput:
        self.pipelines += 1
        if not statements:
            return PipelineOutput()
        first = statements[0]
        if first.is_script and filecopy.is_copy_script(first.script):  # pypsrp's copy script, to the host's disk
            return filecopy.run_copy(self.host_files.setdefault(host, {}), first, input_data)
        match = MARKER_RE.match(first.script.lstrip()[:200]) if first.is_script else None
        if match is not None and match.group(1) == "psdirect-run":
            return self._direct_run(host, dict(first.parameters))
        if match is None or match.group(1) not in self._ops:
            return PipelineOutput(errors=["The term is not recognized as the name of a cmdlet (twin Hyper-V host "
                                          f"{host} answers patchgate's hyperv-* operations only)"], failed=True)
        try:
            return PipelineOutput(output=[_json(self._ops[match.group(1)](host, dict(first.parameters)))])
        except _CmdletError as exc:
            return PipelineOutput(errors=[str(exc)], failed=True)

    # ------------------------------------------------------------ operations

    def _vm(self, host: str, params: dict[str, Any]) -> HostVm:
        vm = self.vms.get(str(params.get("VMId") or "").lower())
        if vm is None or vm.host != host:
            raise _CmdletError(f"Hyper-V was unable to find a virtual machine with id '{params.get('VMId')}'.")
        return vm

    def _power(self, vm: HostVm) -> str:
        return "Running" if self.twin.power_state(vm.name) == "poweredOn" else "Off"

    def _host(self, host: str, _params: dict[str, Any]) -> dict[str, Any]:
        return {"host": host.upper(), "module": True, "hyperv_admin": True}

    def _find(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted_id = str(params.get("VMId") or "").lower()
        found = [vm for vm in self.vms.values() if vm.host == host
                 and (vm.vm_id == wanted_id if wanted_id else vm.name == params.get("Name"))]
        return {"host": host.upper(), "vms": [{"VMId": vm.vm_id, "Name": vm.name, "State": self._power(vm),
                                              "CheckpointType": "Standard"} for vm in found]}

    def _checkpoints(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        with vm.lock:
            vm.lookups += 1
            if self._transient(vm.name, "checkpoint-missing", vm.lookups):
                return {"VMId": vm.vm_id, "checkpoints": []}
            found = [c for c in vm.checkpoints.values() if c["Name"] == params.get("Name")]
        return {"VMId": vm.vm_id, "checkpoints": found}

    def _state(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        with vm.lock:
            restarted, vm.restarted = vm.restarted, False
        ready = self.twin.is_ready(vm.name) and not restarted
        beating = ready and not self.twin.has_fault(vm.name, "heartbeat-never-ok")
        addresses = GUEST_ADDRESSES if ready and not self.twin.has_fault(vm.name, "no-kvp-ip") else []
        return {"VMId": vm.vm_id, "State": self._power(vm), "HeartbeatEnabled": True,
                "Heartbeat": "OK" if beating else "No Contact", "IPAddresses": list(addresses), "Notes": vm.notes}

    def _restore(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        if not any(c["Id"] == params.get("CheckpointId") for c in vm.checkpoints.values()):
            return {"job": "NotStarted", "errors": ["checkpoint not found"], "State": self._power(vm)}
        self.twin.power_off(vm.name)  # Stop-VM -TurnOff
        with vm.lock:
            vm.restores += 1
            failing = self._transient(vm.name, "restore-fails", vm.restores)
        if failing:
            return {"job": "Failed", "errors": [f"'{vm.name}' failed to apply checkpoint. (Virtual machine ID "
                                                f"{vm.vm_id}) (twin fault 'restore-fails')"], "State": "Off"}
        try:
            self.twin.revert(vm.name)
        except LabError as exc:
            return {"job": "Failed", "errors": [exc.detail], "State": self._power(vm)}
        self._guest_restarted(vm.name)
        return {"job": "Completed", "errors": [], "State": self._power(vm)}

    def _start(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        try:
            self.twin.power_on(vm.name)
        except LabError as exc:
            raise _CmdletError(f"'{vm.name}' failed to start: {exc.detail}") from None
        return {"VMId": vm.vm_id, "State": self._power(vm)}

    def _restart(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        with vm.lock:
            vm.restarted = True
        self.twin.reboot(vm.name)
        self._guest_restarted(vm.name)
        return {"VMId": vm.vm_id, "State": self._power(vm)}

    def _tag(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        prefix, value = str(params.get("Prefix") or ""), str(params.get("Value") or "")
        with vm.lock:
            lines = [line for line in vm.notes.splitlines() if line and not line.startswith(prefix)]
            vm.notes = "\r\n".join([*lines, prefix + value] if value else lines)
            return {"VMId": vm.vm_id, "Notes": vm.notes}

    def _checkpoint_create(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        name = str(params.get("Name"))
        self.twin.keep_snapshot(vm.name, name)
        with vm.lock:
            vm.checkpoints[name] = {"Id": str(uuid.uuid4()), "Name": name, "SnapshotType": "Standard",
                                    "CreationTime": dt.datetime.now(dt.UTC).isoformat()}
        return {"VMId": vm.vm_id, "Name": name}

    # ------------------------------------------------------------ PowerShell Direct

    def _direct_open(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        if not self.twin.is_ready(vm.name):
            raise _CmdletError(f"An error has occurred which Windows PowerShell cannot handle. The virtual machine "
                               f"'{vm.name}' is not in running state.")
        if self.twin.has_fault(vm.name, "psdirect-refused"):
            raise _CmdletError("An error has occurred which Windows PowerShell cannot handle. A remote session might "
                               "have ended. (twin fault 'psdirect-refused')")
        expected = credential_pair(self._guest_credentials(vm.name)) if self._guest_credentials else None
        if expected != (params.get("UserName"), params.get("Password")):
            raise _CmdletError("The credential is invalid.")
        self.direct.add(vm.vm_id)
        return {"VMId": vm.vm_id, "State": "Opened"}

    def _direct_vm(self, host: str, params: dict[str, Any]) -> HostVm:
        vm = self._vm(host, params)
        if vm.vm_id not in self.direct:
            raise _CmdletError("patchgate-psdirect-no-session")
        return vm

    def _direct_run(self, host: str, params: dict[str, Any]) -> PipelineOutput:
        try:
            vm = self._direct_vm(host, params)
        except _CmdletError as exc:
            return PipelineOutput(errors=[str(exc)], failed=True)
        statement = Statement(script=str(params.get("Body") or ""), parameters=dict(params.get("Parameters") or {}))
        try:
            return self.guest_shell.run_pipeline(vm.name, [statement], [])
        except TwinFault as fault:  # the guest went away under the session: what Invoke-Command reports
            self.direct.discard(vm.vm_id)
            return PipelineOutput(errors=[f"The background process reported an error with the following message: "
                                          f"The pipe has been ended. ({fault.detail})"], failed=True)

    def _direct_copy(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._direct_vm(host, params)
        files = self.host_files.setdefault(host, {})
        data = files.pop(filecopy.key(str(params.get("HostPath"))), None)
        if data is None:
            raise _CmdletError(f"Cannot find path '{params.get('HostPath')}' because it does not exist.")
        destination = filecopy.resolve(str(params.get("Destination")))
        self.twin.host(vm.name).files[filecopy.key(destination)] = data
        self.twin.persist(vm.name, dirty=True)
        return {"VMId": vm.vm_id, "Path": destination}

    def _direct_close(self, host: str, params: dict[str, Any]) -> dict[str, Any]:
        vm = self._vm(host, params)
        closed = vm.vm_id in self.direct
        self.direct.discard(vm.vm_id)
        return {"VMId": vm.vm_id, "closed": closed}

    # ------------------------------------------------------------ helpers

    def _transient(self, vm_name: str, kind: str, attempt: int) -> bool:
        """A fault of the run's first revert step with all its retries (argument N: the first N attempts;
        'always': every attempt, so the restore fails too and the VM is left to reap), as 'revert-fails' is."""
        fault = self.twin.fault(vm_name, kind)
        if fault is None:
            return False
        if fault.argument == "always":
            return True
        limit = int(fault.argument) if fault.argument and fault.argument.isdigit() else self.lab.retries.count + 1
        return attempt <= limit

    def _guest_restarted(self, vm_name: str) -> None:
        self.direct.discard(self.vm_id(vm_name))  # a restarted guest forgets its PowerShell Direct session
        if self._on_guest_restart is not None:
            try:
                self._on_guest_restart(vm_name)
            except KeyError:
                pass  # no guest endpoint started yet


class _CmdletError(Exception):
    """A terminating error of a Hyper-V cmdlet (what the op script would raise on a real host)."""
