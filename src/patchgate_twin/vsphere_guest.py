"""The twin as the guest OS of simulator VMs (vSphere labs with ``guests: twin``).

In such a lab the vSphere side is real API traffic against govmomi's simulator (revert, power, tasks,
run tags, readiness through the PropertyCollector) and the Windows side is the twin. This module joins
them the way a real guest joins vCenter: it watches the simulator like an outside observer (its own
session, the TaskManager's recentTask through the PropertyCollector) and when a VM is reverted, powered
on/off or reset it drives the twin (``TwinLab.revert/power_on/power_off/reboot``) and then reports the
guest through ``SET.guest.*`` extraConfig as VMware Tools would (Tools running, guest running, green
heartbeat, IP 127.0.0.1, the twin's computer name). tools/vcsim drops guest info synchronously on
revert, power-off and reset, so a readiness wait can never see the pre-revert guest.

It also prepares the simulator for a lab file: simulator VMs are renamed to the lab's VM names and the
snapshots the lab names are created when missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pyVmomi import vim

from patchgate.config.lab import VmSpec
from patchgate.hypervisors.vsphere.settings import VsphereSettings
from patchgate.errors import HypervisorError, LabError
from patchgate.hypervisors.base import GuestEndpoint, SnapshotRef
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.collector import Watch, retrieve, retrieve_all, retrieve_one
from patchgate.hypervisors.vsphere.connection import close_session, open_session
from patchgate.hypervisors.vsphere.inventory import find_vm, snapshot_tree
from patchgate.hypervisors.vsphere.simulator import guest_config
from patchgate.hypervisors.vsphere.tasks import TaskWaiter
from patchgate.secrets.base import Credentials
from patchgate_twin.model import TIME_SCALE

log = logging.getLogger("patchgate.hypervisors.vsphere.twin_guest")

REVERT = "VirtualMachineSnapshot.revertToSnapshot"
POWER_ON = "VirtualMachine.powerOn"
POWER_OFF = "VirtualMachine.powerOff"
RESET = "VirtualMachine.reset"
WATCHED = (REVERT, POWER_ON, POWER_OFF, RESET)
GUEST_ADDRESS = "127.0.0.1"


# ---------------------------------------------------------------------------- lab preparation

def prepare_lab_vms(hypervisor: VsphereHypervisor, specs: Sequence[VmSpec]) -> list[SnapshotRef]:
    """Give each lab VM a simulator VM of its name (renaming unused ones, cloning when none are left) and
    create the snapshot path it names when missing. Returns the lab snapshots."""
    si = hypervisor.si
    wanted = {spec.name for spec in specs}
    found = retrieve_all(si, si.content.rootFolder, vim.VirtualMachine, ["name", "parent", "resourcePool"])
    present = {props.get("name") for _vm, props in found}
    spare = [(vm, props) for vm, props in found if props.get("name") not in wanted]
    for spec in specs:
        if spec.name in present or spec.inventory_path:
            continue
        if spare:
            _rename(hypervisor, spare.pop(0)[0], spec.name)
        else:
            _clone(hypervisor, *found[0], spec.name)
        present.add(spec.name)
    return [ensure_snapshot(hypervisor, spec) for spec in specs]


def _rename(hypervisor: VsphereHypervisor, vm: vim.VirtualMachine, name: str) -> None:
    hypervisor.waiter.run(lambda: vm.Rename_Task(newName=name), vm=name, operation="rename")


def _clone(hypervisor: VsphereHypervisor, source: vim.VirtualMachine, props: dict[str, Any],
           name: str) -> None:
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=props["resourcePool"]), powerOn=True)
    hypervisor.waiter.run(lambda: source.CloneVM_Task(folder=props["parent"], name=name, spec=spec), vm=name,
                          operation="clone")


def ensure_snapshot(hypervisor: VsphereHypervisor, spec: VmSpec) -> SnapshotRef:
    """Create each missing component of ``spec.snapshot`` (``a/b`` makes ``a``, then ``b`` under it)."""
    ref = hypervisor.vm_ref(spec)
    parts = tuple(p for p in spec.snapshot.strip("/").split("/") if p)
    if any(path[-len(parts):] == parts for path, _node in snapshot_tree(hypervisor.si, ref)):
        return hypervisor.snapshot(spec)
    for depth in range(1, len(parts) + 1):
        prefix = parts[:depth]
        nodes = [node for path, node in snapshot_tree(hypervisor.si, ref) if path[-depth:] == prefix]
        if nodes:  # go to the existing parent, so the next snapshot is created under it
            target = nodes[0].snapshot
            hypervisor.waiter.run(lambda t=target: t.RevertToSnapshot_Task(), vm=spec.name,
                                  operation="snapshot")
            continue
        hypervisor.create_snapshot(ref, spec.name, parts[depth - 1],
                                   "created by patchgate for a simulator lab")
    return hypervisor.snapshot(spec)


# ---------------------------------------------------------------------------- the watcher

Callback = Callable[[str], None]


class VsphereTwinGuest:
    """Watches the simulator and plays each lab VM's guest OS through the twin."""

    def __init__(self, settings: VsphereSettings, credentials: Credentials, specs: Sequence[VmSpec],
                 twin: Any, *, on_revert: Callback | None = None, on_power_on: Callback | None = None,
                 on_power_off: Callback | None = None, on_reset: Callback | None = None,
                 ready_timeout: float = 600.0) -> None:
        self.settings = settings
        self._credentials = credentials
        self.specs = list(specs)
        self.twin = twin
        self.on_revert = on_revert or twin.revert
        self.on_power_on = on_power_on or twin.power_on
        self.on_power_off = on_power_off or twin.power_off
        self.on_reset = on_reset or twin.reboot
        self.ready_timeout = ready_timeout
        self._si: vim.ServiceInstance | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._names: dict[str, str] = {}  # moref id -> lab VM name
        self._refs: dict[str, vim.VirtualMachine] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._pending: list[str] = []
        self.events: list[tuple[str, str]] = []  # (vm, event) handled, in order: evidence and tests
        self._events_changed = threading.Condition()
        self.errors: list[str] = []
        self._started = threading.Event()

    # -- lifecycle

    def start(self) -> VsphereTwinGuest:
        self._si, _ = open_session(self.settings, self._credentials)
        for spec in self.specs:
            ref = find_vm(self._si, spec, self.settings.datacenter)
            self._names[ref._moId] = spec.name
            self._refs[spec.name] = ref
        manager = self._si.content.taskManager
        self._watch = Watch(self._si, manager, ["recentTask"])
        self._seen = {t._moId for t in self._watch.values.get("recentTask") or []}  # history is not ours
        for name in self._refs:
            self._sync(name)
        self._thread = threading.Thread(target=self._run, name="vsphere-twin-guest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.close()
        si, self._si = self._si, None
        close_session(si)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._handle_new_tasks()
                self._watch.wait(1.0)
            except Exception as exc:  # the watcher must outlive one bad update; the run sees the errors
                if self._stop.is_set():
                    return
                log.error("twin guest watcher: %s", exc)
                self.errors.append(str(exc))
                self._stop.wait(0.5)

    # -- task events

    def _handle_new_tasks(self) -> None:
        assert self._si is not None
        for task in self._watch.values.get("recentTask") or []:
            if task._moId not in self._seen:
                self._seen.add(task._moId)
                self._pending.append(task._moId)
        if not self._pending:
            return
        tasks = [vim.Task(moid, self._si._stub) for moid in self._pending]
        infos = retrieve(self._si, vim.Task, tasks, ["info.state", "info.descriptionId", "info.entityName"])
        still: list[str] = []
        for moid in self._pending:
            info = infos.get(moid, {})
            state = str(info.get("info.state"))
            if info.get("info.descriptionId") not in WATCHED or state == "error":
                continue
            if state != "success":
                still.append(moid)
                continue
            name = self._vm_for(str(info.get("info.descriptionId")), str(info.get("info.entityName")))
            if name is not None:
                self._event(name, str(info["info.descriptionId"]))
        self._pending = still

    def _vm_for(self, description: str, entity: str) -> str | None:
        """Lab VM name from a task's entity: the simulator names the snapshot for reverts."""
        assert self._si is not None
        if entity in self._names:
            return self._names[entity]
        if entity in self._refs:  # vCenter reports the entity's name
            return entity
        if description == REVERT and entity.startswith("snapshot-"):
            vm = retrieve_one(self._si, vim.vm.Snapshot(entity, self._si._stub), ["vm"]).get("vm")
            return self._names.get(vm._moId) if vm is not None else None
        return None

    def _event(self, name: str, description: str) -> None:
        event = {REVERT: "revert", POWER_ON: "power-on", POWER_OFF: "power-off", RESET: "reset"}[description]
        log.debug("twin guest: vm %s %s", name, event)
        with self._lock:
            self._generation[name] = self._generation.get(name, 0) + 1
        try:
            if event == "revert":
                self.on_revert(name)
            elif event == "power-off":
                self.on_power_off(name)
            elif event == "reset":
                self.on_reset(name)
            elif event == "power-on":
                self.on_power_on(name)
        except LabError as exc:  # e.g. power-on of a twin VM never reverted: nothing runs there yet
            log.debug("twin guest: vm %s %s: %s", name, event, exc)
        with self._events_changed:
            self.events.append((name, event))
            self._events_changed.notify_all()
        self._sync(name)

    def wait_event(self, name: str, event: str, *, after: int = 0, timeout: float = 30.0) -> bool:
        """Wait until ``(name, event)`` is handled at index >= ``after`` (a ``len(events)`` taken before)."""
        with self._events_changed:
            return self._events_changed.wait_for(lambda: (name, event) in self.events[after:],
                                                 timeout=timeout)

    # -- guest reports

    def report_running(self, name: str) -> None:
        """Report a guest that was already running when this watcher started (no task announced it)."""
        self._sync(name)

    def _sync(self, name: str) -> None:
        """Report the guest up (once the twin says it is ready) when the simulator VM runs."""
        assert self._si is not None
        ref = self._refs[name]
        power = str(retrieve_one(self._si, ref, ["runtime.powerState"]).get("runtime.powerState"))
        if power != "poweredOn":
            return
        vm = self.twin.vm(name)
        if vm.host is None:
            return  # never reverted: no Windows state to play yet
        if not vm.powered_on:
            try:
                self.on_power_on(name)
            except LabError as exc:
                log.debug("twin guest: vm %s power on: %s", name, exc)
                return
        with self._lock:
            generation = self._generation.get(name, 0)
        threading.Thread(target=self._report_when_ready, args=(name, generation), daemon=True,
                         name=f"twin-guest-{name}").start()

    def _report_when_ready(self, name: str, generation: int) -> None:
        twin = self.twin
        if twin.has_fault(name, "never-ready"):
            return  # Tools never start: readiness times out on "VMware Tools running", as it would
        no_ip = twin.has_fault(name, "no-ip")
        if not no_ip:
            try:
                twin.wait_ready(name, self.ready_timeout)
            except LabError as exc:
                log.debug("twin guest: vm %s never became ready: %s", name, exc)
                return
        with self._lock:
            if self._generation.get(name, 0) != generation or self._stop.is_set():
                return  # a newer event owns the guest state now
        host = twin.host(name)
        values = guest_config(ip=None if no_ip else GUEST_ADDRESS, hostname=host.computer_name,
                              tools="guestToolsRunning", state="running", heartbeat="green")
        spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in values])
        si = self._si
        if si is None:
            return
        try:
            TaskWaiter(si, default_timeout=60).run(lambda: self._refs[name].ReconfigVM_Task(spec), vm=name,
                                                    operation="guest-report")
        except LabError as exc:
            self.errors.append(str(exc))
            log.error("twin guest: reporting vm %s failed: %s", name, exc)


# ---------------------------------------------------------------------------- the provider face

class TwinGuestHypervisor:
    """A VsphereHypervisor whose guests are played by the twin; everything else is the vSphere provider."""

    def __init__(self, inner: VsphereHypervisor, twin: Any,
                 endpoint_for: Callable[[str], GuestEndpoint]) -> None:
        self.inner = inner
        self.twin = twin
        self.endpoint_for = endpoint_for
        self.guest: VsphereTwinGuest | None = None
        self.kind = inner.kind
        self.cert_validation = inner.cert_validation
        self.guest_time_scale = TIME_SCALE  # the guests are the twin's: Windows time runs fast (docs/twin.md)

    def __getattr__(self, name: str) -> Any:  # settings, vm_ref, tag_field, cancel, ... (reap works too)
        return getattr(self.inner, name)

    def connect(self) -> None:
        self.inner.connect()
        if self.guest is None:
            specs = [*self.twin.lab.vms, *self.twin.lab.control_vms]  # the control pairs are guests too
            prepare_lab_vms(self.inner, specs)
            self.guest = VsphereTwinGuest(self.inner.settings, self.inner._credentials, specs, self.twin).start()

    def close(self) -> None:
        guest, self.guest = self.guest, None
        if guest is not None:
            guest.stop()
        self.inner.close()

    def snapshot(self, vm: VmSpec) -> SnapshotRef:
        return self.inner.snapshot(vm)

    def revert(self, vm: VmSpec) -> SnapshotRef:
        """Revert in vSphere, then wait until the twin has played the revert on its guest: the watcher sees the
        task after it finished, and a run that ends right after its restores would otherwise close the watcher
        first and leave the twin's disk changed (a reap would then find a clean lab dirty)."""
        self._ensure()
        assert self.guest is not None
        mark = len(self.guest.events)
        snapshot = self.inner.revert(vm)
        if not self.guest.wait_event(vm.name, "revert", after=mark, timeout=self.inner.settings.task_timeout):
            raise HypervisorError("the twin never played the revert on its guest", vm=vm.name, step="revert")
        return snapshot

    def power_on(self, vm: VmSpec) -> None:
        self._ensure()
        self.inner.power_on(vm)

    def power_state(self, vm: VmSpec) -> str:
        """vSphere's answer; a running simulator VM gets its twin guest played (at rest it runs its snapshot)."""
        self._ensure()
        assert self.guest is not None
        state = self.inner.power_state(vm)
        if state == "poweredOn" and self.twin.power_state(vm.name) == "poweredOn":
            self.guest.report_running(vm.name)
        return state

    def wait_ready(self, vm: VmSpec, timeout: float) -> GuestEndpoint:
        self._ensure()
        reported = self.inner.wait_ready(vm, timeout)
        endpoint = self.endpoint_for(vm.name)
        return GuestEndpoint(address=endpoint.address, port=endpoint.port,
                             hostname=reported.hostname or endpoint.hostname)

    def reboot(self, vm: VmSpec) -> None:
        self._ensure()
        self.inner.reboot(vm)

    def mark_in_use(self, vm: VmSpec, run_id: str | None) -> None:
        self.inner.mark_in_use(vm, run_id)

    def keep_failure_snapshot(self, vm: VmSpec, run_id: str) -> str | None:
        name = self.inner.keep_failure_snapshot(vm, run_id)
        if name is not None:
            state = self.twin.vm(vm.name)
            if state.host is not None:
                state.snapshots[name] = state.host.clone()  # the twin's half of the evidence
        return name

    def _ensure(self) -> None:
        if self.guest is None:
            self.connect()
        if self.guest is not None and self.guest.errors:
            raise HypervisorError(f"the twin guest watcher failed: {self.guest.errors[-1]}",
                                  step="twin-guest")


def attach_twin_guest(hypervisor: VsphereHypervisor, twin: Any,
                      endpoint_for: Callable[[str], GuestEndpoint]) -> TwinGuestHypervisor:
    """Wrap a vSphere provider so the twin plays its VMs' guests (used for ``guests: twin`` labs)."""
    return TwinGuestHypervisor(hypervisor, twin, endpoint_for)
