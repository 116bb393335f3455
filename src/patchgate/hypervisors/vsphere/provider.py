"""VsphereHypervisor: the lifecycle's hypervisor verbs on vCenter, through pyVmomi.

One session per run (``connect``/``close``), VM and snapshot references resolved once and cached, every
mutation preceded by an "is anyone else busy with this VM?" check, every task waited for by the one
PropertyCollector task waiter (progress, timeout, cancellation).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pyVmomi import vim, vmodl

from patchgate.config.lab import VmSpec
from patchgate.hypervisors.vsphere.settings import VsphereSettings
from patchgate.errors import HypervisorError
from patchgate.hypervisors.base import GuestEndpoint, SnapshotRef
from patchgate.hypervisors.vsphere import inventory, readiness
from patchgate.hypervisors.vsphere.collector import retrieve_one
from patchgate.hypervisors.vsphere.connection import close_session, open_session
from patchgate.hypervisors.vsphere.runtag import RunTag, RunTagField
from patchgate.hypervisors.vsphere.tasks import TaskWaiter, describe_fault
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

log = logging.getLogger("patchgate.hypervisors.vsphere")

ProgressListener = Callable[[str, str, int], None]  # (vm, operation, percent)

FAILURE_SNAPSHOT_PREFIX = "patchgate-failure-"
# vCenter answers NotSupported where guest reboot is impossible; govmomi's simulator has no RebootGuest
# at all and answers MethodNotFound.
GUEST_REBOOT_UNAVAILABLE = (vmodl.fault.NotImplemented, vmodl.fault.NotSupported, vmodl.fault.MethodNotFound)


class VsphereHypervisor:
    """Implements ``patchgate.hypervisors.base.Hypervisor`` for vCenter (and govmomi's simulator)."""

    kind = "vsphere"

    def __init__(self, settings: VsphereSettings, credentials: Credentials, lab_name: str) -> None:
        self.settings = settings
        self.lab_name = lab_name
        self.cert_validation = settings.cert_validation
        self._credentials = credentials
        redactor.register(credentials.password.get_secret_value())
        self._si: vim.ServiceInstance | None = None
        self._lock = threading.Lock()
        self._vms: dict[str, vim.VirtualMachine] = {}
        self._tag_field: RunTagField | None = None
        self.cancel_event = threading.Event()
        self.server_fingerprint: str | None = None
        self.on_progress: ProgressListener | None = None

    # ------------------------------------------------------------------ session

    def connect(self) -> None:
        with self._lock:
            if self._si is None:
                self._si, self.server_fingerprint = open_session(self.settings, self._credentials)
                log.info("vSphere session open: %s as %s", self.settings.url, self._credentials.username)

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
            self._vms.clear()
            self._tag_field = None
        close_session(si)

    def cancel(self) -> None:
        """Interrupt: running waits cancel their vSphere tasks (where cancelable) and raise."""
        self.cancel_event.set()

    @property
    def si(self) -> vim.ServiceInstance:
        if self._si is None:
            self.connect()
        assert self._si is not None
        return self._si

    @property
    def waiter(self) -> TaskWaiter:
        return TaskWaiter(self.si, default_timeout=self.settings.task_timeout, cancel_event=self.cancel_event)

    def _progress(self, vm: str, operation: str) -> Callable[[int], None]:
        def report(percent: int) -> None:
            log.debug("vm %s: %s %d%%", vm, operation, percent)
            if self.on_progress is not None:
                self.on_progress(vm, operation, percent)
        return report

    # ------------------------------------------------------------------ lookup

    def vm_ref(self, vm: VmSpec) -> vim.VirtualMachine:
        """The VM object (resolved once per session)."""
        ref = self._vms.get(vm.name)
        if ref is None:
            try:
                ref = inventory.find_vm(self.si, vm, self.settings.datacenter)
            except vmodl.MethodFault as exc:
                raise HypervisorError(f"inventory lookup failed: {describe_fault(exc)}", vm=vm.name,
                                      step="inventory") from None
            self._vms[vm.name] = ref
        return ref

    def snapshot(self, vm: VmSpec) -> SnapshotRef:
        ref = self.vm_ref(vm)
        return self._snapshot_ref(vm, ref, inventory.find_snapshot(self.si, ref, vm))

    @staticmethod
    def _snapshot_ref(vm: VmSpec, ref: vim.VirtualMachine, match: inventory.SnapshotMatch) -> SnapshotRef:
        return SnapshotRef(vm=vm.name, name=match.path, identifier=match.ref._moId,
                           extra={"vm_moref": ref._moId, "created": match.created,
                                  "snapshot_power_state": match.power_state,
                                  "quiesced": str(match.quiesced).lower()})

    def power_state(self, vm: VmSpec) -> str:
        return str(retrieve_one(self.si, self.vm_ref(vm), ["runtime.powerState"]).get("runtime.powerState"))

    # ------------------------------------------------------------------ verbs

    def revert(self, vm: VmSpec) -> SnapshotRef:
        ref = self.vm_ref(vm)
        inventory.ensure_idle(self.si, ref, vm.name, "revert")
        match = inventory.find_snapshot(self.si, ref, vm)
        snap = self._snapshot_ref(vm, ref, match)
        self.waiter.run(lambda: match.ref.RevertToSnapshot_Task(), vm=vm.name, operation="revert",
                        on_progress=self._progress(vm.name, "revert"))
        log.info("vm %s: reverted to snapshot %s (%s)", vm.name, snap.name, snap.identifier)
        return snap

    def power_on(self, vm: VmSpec) -> None:
        """No-op when on. A revert to a snapshot without memory leaves a real VM off; the simulator keeps
        the power state. Both end here powered on."""
        ref = self.vm_ref(vm)
        state = self.power_state(vm)
        if state == "poweredOn":
            return
        inventory.ensure_idle(self.si, ref, vm.name, "power-on")
        self.waiter.run(lambda: ref.PowerOnVM_Task(), vm=vm.name, operation="power-on",
                        on_progress=self._progress(vm.name, "power-on"))
        log.info("vm %s: powered on (was %s)", vm.name, state)

    def wait_ready(self, vm: VmSpec, timeout: float) -> GuestEndpoint:
        ref = self.vm_ref(vm)
        try:
            address, hostname = readiness.wait_ready(self.si, ref, vm.name, self.settings, timeout,
                                                     need_address=vm.address is None)
        except vmodl.MethodFault as exc:
            raise HypervisorError(f"readiness wait failed: {describe_fault(exc)}", vm=vm.name,
                                  step="ready") from None
        return GuestEndpoint(address=vm.address or address or "", hostname=hostname)

    def reboot(self, vm: VmSpec) -> None:
        """A guest OS restart through VMware Tools; a hard reset only where the endpoint cannot do that.

        govmomi's simulator does not implement RebootGuest (MethodNotFound), so there the VM is reset
        (ResetVM_Task), which its model completes at once. On vCenter, RebootGuest returns as soon as the
        request is passed to Tools, so this waits for Tools to stop before the caller waits for readiness.
        """
        ref = self.vm_ref(vm)
        inventory.ensure_idle(self.si, ref, vm.name, "reboot")
        try:
            ref.RebootGuest()
        except GUEST_REBOOT_UNAVAILABLE as exc:
            log.warning("vm %s: RebootGuest unavailable (%s); resetting the VM instead", vm.name,
                        describe_fault(exc))
            self.waiter.run(lambda: ref.ResetVM_Task(), vm=vm.name, operation="reset",
                            on_progress=self._progress(vm.name, "reset"))
            return
        except vim.fault.ToolsUnavailable:
            raise HypervisorError("cannot reboot the guest: VMware Tools is not running (no hard reset "
                                  "is done behind your back; check the guest)", vm=vm.name,
                                  step="reboot") from None
        except vmodl.MethodFault as exc:
            raise HypervisorError(f"guest reboot refused: {describe_fault(exc)}", vm=vm.name,
                                  step="reboot") from None
        if not readiness.wait_tools_down(self.si, ref, self.settings.reboot_down_timeout):
            log.warning("vm %s: VMware Tools still reported running %gs after the reboot request", vm.name,
                        self.settings.reboot_down_timeout)

    # ------------------------------------------------------------------ run hygiene

    @property
    def tag_field(self) -> RunTagField:
        if self._tag_field is None:
            self._tag_field = RunTagField(self.si, self.settings.run_tag_field)
        return self._tag_field

    def mark_in_use(self, vm: VmSpec, run_id: str | None) -> None:
        ref = self.vm_ref(vm)
        value = RunTag.for_this_process(run_id).to_json() if run_id else ""
        try:
            self.tag_field.write(ref, value)
        except vmodl.MethodFault as exc:
            raise HypervisorError(f"cannot set custom attribute '{self.settings.run_tag_field}': "
                                  f"{describe_fault(exc)}", vm=vm.name, step="mark-in-use") from None

    def raw_run_tag(self, vm: VmSpec) -> str | None:
        """The run tag's text as the custom attribute holds it (what the reaper reads)."""
        return self.tag_field.read(self.vm_ref(vm))

    def run_tag(self, vm: VmSpec) -> RunTag | None:
        return RunTag.parse(self.raw_run_tag(vm))

    def keep_failure_snapshot(self, vm: VmSpec, run_id: str) -> str | None:
        if not self.settings.keep_failure_snapshot:
            return None
        ref = self.vm_ref(vm)
        name = f"{FAILURE_SNAPSHOT_PREFIX}{run_id}"
        self.create_snapshot(ref, vm.name, name,
                             f"patchgate run {run_id}: state at failure, kept for diagnosis")
        log.info("vm %s: kept failure snapshot %s", vm.name, name)
        return name

    def create_snapshot(self, ref: vim.VirtualMachine, vm_name: str, name: str, description: str = "",
                        memory: bool = False) -> Any:
        """CreateSnapshot_Task and wait; returns the new snapshot's moref."""
        return self.waiter.run(lambda: ref.CreateSnapshot_Task(name=name, description=description,
                                                               memory=memory, quiesce=False),
                               vm=vm_name, operation="snapshot",
                               on_progress=self._progress(vm_name, "snapshot"))
