"""The twin lab: one WindowsHost per VM, named snapshots, power and readiness, injected faults.

The hypervisor provider (hypervisors/twin.py), the in-process remoting and the WSMan endpoint all act on this one
object, so a revert seen by one face is seen by all.

Each VM's state is also written to a "disk" (:class:`TwinDisks`, ``$PATCHGATE_STATE_DIR/twin/<lab>/<vm>.pickle``)
after every change and read back when a twin lab starts: a real VM's disk outlives the harness that was changing
it, and so must the twin's, or a run killed with SIGKILL would leave nothing for ``patchgate reap`` to clean up.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from patchgate.atomic import atomic_write
from patchgate.config.lab import Lab, VmSpec
from patchgate.errors import ConfigError, HypervisorError, LabTimeout
from patchgate_twin.faults import ALL_FAULTS, HYPERV_FAULTS, Fault, parse_faults
from patchgate_twin.guestfiles import BlobStore, GuestFiles
from patchgate_twin.lease_fault import LeaseHeldFault
from patchgate_twin.model import WindowsHost, utcnow
from patchgate_twin.noise import HostNoise, NoiseSettings
from patchgate_twin.settings import TwinLatency

if TYPE_CHECKING:
    from patchgate_twin.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass
class TwinVm:
    spec: VmSpec
    faults: dict[str, Fault]
    host: WindowsHost | None = None
    snapshots: dict[str, WindowsHost] = field(default_factory=dict)
    powered_on: bool = False
    ready_at: float | None = None  # monotonic time the guest finishes booting; None = never
    reverts: int = 0
    reboots: int = 0
    sticky_faults: set[str] = field(default_factory=set)  # raised by behaviours (e.g. never ready after reboot)
    lock: threading.RLock = field(default_factory=threading.RLock)
    dirty: bool = False  # changed since its last revert (what a reap must undo)
    unsaved: bool = False  # changed since its disk was last written (written when the twin closes)
    disk_writes: int = 0  # how often its disk was written (a revert checks nothing overtook its early write)
    revert_attempts: int = 0


DISK_VERSION = 3  # 3: files are names of contents on the disk folder (a disk of another version is rebuilt)


class TwinDisks:
    """Durable per-VM state of one twin lab: current host, its snapshots, and whether it left its snapshot.

    Pickle, because WindowsHost is a tree of dataclasses; the files live in the user's own state directory and
    are read only by patchgate (never load a disk from somewhere you do not trust).

    A disk is written when its VM is reverted, when it first leaves its snapshot (so a process killed after that
    leaves a disk that says "changed", which ``patchgate reap`` reverts), and when the twin closes; the changes
    in between (every install or staged file) are kept in memory until then, because a killed run's VM is
    reverted anyway. No fsync: the file only has to outlive the process, not the machine.
    """

    def __init__(self, lab_name: str, folder: Path | None = None) -> None:
        from patchgate.paths import state_dir

        self.folder = folder or state_dir() / "twin" / lab_name
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, vm: str) -> Path:
        return self.folder / f"{vm}.pickle"

    def save(self, vm: TwinVm, *, reverted_to: WindowsHost | None = None) -> None:
        """Write the VM's disk; ``reverted_to``: the host a revert is putting in place (clean), written while
        the revert still runs."""
        host, dirty = (vm.host, vm.dirty) if reverted_to is None else (reverted_to, False)
        record = {"version": DISK_VERSION, "vm": vm.spec.name, "snapshot": vm.spec.snapshot,
                  "image": vm.spec.image, "snapshots": vm.snapshots, "host": host, "dirty": dirty}
        # a reader sees the old disk or the new one, never half
        atomic_write(self.path(vm.spec.name), pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
        vm.disk_writes += 1

    def load(self, vm: str) -> dict | None:
        path = self.path(vm)
        if not path.is_file():
            return None
        try:
            with path.open("rb") as handle:
                record = pickle.load(handle)  # noqa: S301 - our own state file, see the class docstring
        except Exception as exc:  # noqa: BLE001 - an unreadable disk is replaced by a fresh one
            log.warning("twin disk %s is unreadable (%s); starting %s from its image", path, exc, vm)
            return None
        if not isinstance(record, dict) or record.get("version") != DISK_VERSION:
            return None
        return record

    def at_snapshot(self, vm: str) -> bool:
        """The VM's durable state is its snapshot: reverted, not dirty (what tests and reaps check)."""
        record = self.load(vm)
        if record is None:
            return True  # never used: nothing to restore
        snap = record["snapshots"].get(record["snapshot"])
        return not record["dirty"] and snap is not None and record["host"] == snap


class TwinLab:
    """All twin VMs of one lab run. Thread-safe per VM."""

    def __init__(self, lab: Lab, catalog: "Catalog", *, latency: TwinLatency | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, stop: threading.Event | None = None,
                 disks: TwinDisks | None = None, inject_faults: bool = True) -> None:
        from patchgate_twin.catalog import Catalog  # local: the catalogue module imports model types

        assert isinstance(catalog, Catalog)
        self.lab = lab
        self.catalog = catalog
        self.latency = latency or TwinLatency()
        self.clock = clock
        self.stop = stop or threading.Event()
        where = str(lab.source) if lab.source else None
        self.vms: dict[str, TwinVm] = {}
        for spec in [*lab.vms, *lab.control_vms]:  # the control pairs are VMs of the twin too
            faults = parse_faults(spec.faults, where=where)  # validated even when not injected
            self.vms[spec.name] = TwinVm(spec=spec, faults=faults if inject_faults else {})
        self._changed = threading.Condition()
        self.disks = disks
        self.lease_fault = LeaseHeldFault({name: vm.faults for name, vm in self.vms.items()})
        self.noise = _noise_for(lab)
        files_root = disks.folder / "files" if disks is not None else None
        self._stores = {name: BlobStore(files_root / name if files_root else None) for name in self.vms}
        if disks is not None:
            for vm in self.vms.values():
                self._load_disk(vm)

    # ------------------------------------------------------------ durable state

    def _load_disk(self, vm: TwinVm) -> None:
        assert self.disks is not None
        record = self.disks.load(vm.spec.name)
        if record is None or record.get("image") != vm.spec.image:
            return  # a new VM, or its image changed in the lab file: snapshots are rebuilt from the image
        vm.snapshots = dict(record.get("snapshots") or {})
        snap = vm.snapshots.get(vm.spec.snapshot)
        if snap is not None and not self._image_matches(vm, snap):
            vm.snapshots.pop(vm.spec.snapshot)  # the image changed since: the snapshot is rebuilt from it
        vm.host = record.get("host")
        vm.dirty = bool(record.get("dirty"))
        if vm.dirty:
            log.info("twin VM %s was left changed by an earlier run (its disk is not at a snapshot)",
                        vm.spec.name)

    def _image_matches(self, vm: TwinVm, snap: WindowsHost) -> bool:
        assert vm.spec.image
        try:
            fresh = self.catalog.image(vm.spec.image)
        except KeyError:
            return False
        fresh.computer_name = snap.computer_name
        fresh.last_boot_up_time = snap.last_boot_up_time  # the one field an image build stamps with "now"
        _snapshot_conditions(vm, fresh)
        return fresh == snap

    def persist(self, name: str, *, dirty: bool | None = None) -> None:
        """Record a change of the VM's disk; ``dirty`` marks it changed (True) or back at its snapshot (False).
        Written now when the changed/clean flag flips, otherwise when the twin closes (see TwinDisks)."""
        vm = self.vm(name)
        with vm.lock:
            if dirty is True and vm.dirty:
                vm.unsaved = True
                return
            if dirty is not None:
                vm.dirty = dirty
            self._save(vm)

    def _save(self, vm: TwinVm) -> None:
        vm.unsaved = False
        if self.disks is not None:
            self.disks.save(vm)

    def close(self) -> None:
        """Write the disks changed since their last write and remove the files they no longer name; give back
        leases the 'lease-held' fault took.

        Only a VM with changes of this run not yet on its disk is still this run's (a kept VM, or one a failed
        revert left changed): every other VM was reverted (and collected) under its lease, or never touched, and
        may by now be leased by another run writing its files, which must not be swept away here."""
        for name, vm in self.vms.items():
            with vm.lock:
                if vm.unsaved:
                    self._save(vm)
                    self._stores[name].collect(self._referenced(vm), incoming=True)
                self._stores[name].close()
        self.lease_fault.release()

    def store(self, name: str) -> BlobStore:
        """The VM's folder on the twin's disk, where its files' contents are."""
        self.vm(name)
        return self._stores[name]

    def files(self, name: str, host: WindowsHost | None = None) -> GuestFiles:
        """The VM's files (of ``host``, default its current one) over its folder on the twin's disk."""
        return GuestFiles((host or self.host(name)).files, self._stores[name])

    @staticmethod
    def _referenced(vm: TwinVm) -> set[str]:
        hosts = [*vm.snapshots.values(), *([vm.host] if vm.host is not None else [])]
        return {digest for host in hosts for digest in host.files.values()}

    def hold_leases(self, manager: object, vm_names: list[str]) -> None:
        self.lease_fault.hold(manager, vm_names)

    # ------------------------------------------------------------ helpers

    def vm(self, name: str) -> TwinVm:
        try:
            return self.vms[name]
        except KeyError:
            raise HypervisorError(f"no twin VM named '{name}' in lab '{self.lab.name}'", vm=name) from None

    def host(self, name: str) -> WindowsHost:
        vm = self.vm(name)
        if vm.host is None:
            raise HypervisorError("the twin VM has no state yet: revert it to a snapshot first", vm=name)
        return vm.host

    def has_fault(self, name: str, kind: str) -> bool:
        vm = self.vm(name)
        return kind in vm.faults or kind in vm.sticky_faults

    def fault(self, name: str, kind: str) -> Fault | None:
        return self.vm(name).faults.get(kind)

    def _pause(self, seconds: float, *, interruptible: bool = True) -> None:
        """Simulated lab time; cut short when the run is stopping (but never for a restore)."""
        if seconds <= 0:
            return
        if not interruptible:
            threading.Event().wait(seconds)
        elif self.stop.wait(seconds):
            raise HypervisorError("run is stopping")

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------ snapshots

    def snapshot_state(self, name: str) -> WindowsHost:
        """The VM's named snapshot, built from its image the first time it is used."""
        vm = self.vm(name)
        with vm.lock:
            snap = vm.snapshots.get(vm.spec.snapshot)
            if snap is None:
                assert vm.spec.image, "lab validation guarantees an image on twin VMs"
                snap = self.catalog.image(vm.spec.image)
                snap.computer_name = vm.spec.name.upper()[:15]
                _snapshot_conditions(vm, snap)
                vm.snapshots[vm.spec.snapshot] = snap
            return snap

    def ensure_snapshot(self, name: str) -> None:
        """Build the VM's named snapshot now if it was never used (what a snapshot lookup does)."""
        self.snapshot_state(name)

    def snapshot_identifier(self, name: str) -> str:
        return snapshot_identifier(self.vm(name).spec)

    def keep_snapshot(self, name: str, snapshot: str) -> None:
        """Keep the VM's current state as snapshot ``snapshot`` (a failure snapshot for debugging)."""
        vm = self.vm(name)
        with vm.lock:
            if vm.host is not None:
                vm.snapshots[snapshot] = vm.host.clone()

    def _revert_fails(self, vm: TwinVm) -> bool:
        """Fault 'revert-fails' fails the first revert step of the run with all its retries (argument N: the
        first N attempts; 'always': every revert, so the restore fails too and the VM is left to reap)."""
        fault = vm.faults.get("revert-fails")
        if fault is None:
            return False
        vm.revert_attempts += 1
        if fault.argument == "always":
            return True
        limit = int(fault.argument) if fault.argument and fault.argument.isdigit() else self.lab.retries.count + 1
        return vm.revert_attempts <= limit

    def revert(self, name: str) -> None:
        vm = self.vm(name)
        if self._revert_fails(vm):
            raise HypervisorError(f"revert to snapshot '{vm.spec.snapshot}' failed: the twin injects "
                                  "fault 'revert-fails'", vm=name, step="revert")
        began = time.monotonic()
        snap = self.snapshot_state(name)
        fresh = snap.clone()
        if self.disks is not None:
            self.disks.save(vm, reverted_to=fresh)
        written = vm.disk_writes
        # the copy and the disk write are part of the revert: the simulated lab time is the latency, not the
        # latency plus our CPU (with a fleet reverting together, writing the disks afterwards queued them all)
        self._pause(self.latency.revert - (time.monotonic() - began), interruptible=False)
        with vm.lock:
            vm.host = fresh
            if name in self.noise:
                self.noise[name].reseed()
            vm.powered_on = False  # a snapshot without memory: reverted VMs are off
            vm.ready_at = None
            vm.sticky_faults.clear()
            vm.reverts += 1
            vm.dirty = vm.unsaved = False  # what the disk holds already
            if vm.disk_writes != written:  # the old guest's last change was written meanwhile: write over it
                self._save(vm)
            # the reverted guest's files are gone, half-written ones too (the revert holds the VM's lease)
            self._stores[name].collect(self._referenced(vm), incoming=True)
        log.debug("twin %s reverted to %s", name, vm.spec.snapshot)
        self._notify()

    # ------------------------------------------------------------ power and readiness

    def power_on(self, name: str) -> None:
        vm = self.vm(name)
        with vm.lock:
            if vm.host is None:
                raise HypervisorError("cannot power on a twin VM that was never reverted", vm=name)
            if vm.powered_on:
                return
            vm.powered_on = True
            now = self.clock()
            if name in self.noise:
                self.noise[name].after_boot(vm.host, now)
            skew = getattr(self.lab.hypervisor.settings, "clock_skew", None)
            if skew is not None:
                vm.host.clock_offset_seconds = float(skew)
            vm.host.last_boot_up_time = vm.host.guest_time(now)
            vm.ready_at = self._ready_time(vm)
            # Booting changes nothing a restore must undo: a reverted VM that is powered on (a vSphere snapshot
            # with memory comes back running) is still at its snapshot. What a run changes later marks it.
            self.persist(name)
        self._notify()

    def power_state(self, name: str) -> str:
        """What the hypervisor reports: ``poweredOn`` or ``poweredOff``. A twin lab's VMs rest running at their
        snapshot (as a vSphere VM does whose snapshot holds its memory): a VM this twin has not reverted yet and
        that no earlier run left changed is up and ready, so ``patchgate doctor`` can read it as it is (settings
        ``at_rest: off``: it rests off)."""
        vm = self.vm(name)
        settings = self.lab.hypervisor.settings
        rests_running = getattr(settings, "at_rest", "running") == "running"
        with vm.lock:
            if not vm.powered_on and vm.reverts == 0 and not vm.dirty and rests_running:
                if vm.host is None:
                    vm.host = self.snapshot_state(name).clone()
                vm.powered_on = True
                vm.ready_at = None if self._ready_time(vm) is None else time.monotonic()
            return "poweredOn" if vm.powered_on else "poweredOff"

    def _ready_time(self, vm: TwinVm) -> float | None:
        if {"never-ready", "no-ip"} & set(vm.faults) or "never-ready" in vm.sticky_faults:
            return None
        return time.monotonic() + self.latency.boot

    def is_ready(self, name: str) -> bool:
        vm = self.vm(name)
        return vm.powered_on and vm.ready_at is not None and time.monotonic() >= vm.ready_at

    def wait_ready(self, name: str, timeout: float) -> None:
        vm = self.vm(name)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.is_ready(name):
                if self.stop.is_set():
                    raise HypervisorError("run is stopping", vm=name, step="wait_ready")
                now = time.monotonic()
                if now >= deadline:
                    what = "an IP address" if "no-ip" in vm.faults else "ready (heartbeat and remoting)"
                    raise LabTimeout(f"guest did not report {what} within {timeout:g}s", vm=name,
                                     step="wait_ready")
                wake = deadline if vm.ready_at is None else min(deadline, vm.ready_at)
                self._changed.wait(timeout=max(0.0, min(wake - now, 0.5)))

    def reboot(self, name: str) -> None:
        """Restart: the guest goes down, post-reboot effects apply, then it boots again."""
        from patchgate_twin.behaviours import complete_reboot

        vm = self.vm(name)
        with vm.lock:
            host = self.host(name)
            vm.ready_at = None
            vm.reboots += 1
            shutdown = host.guest_time(self.clock())
        self._notify()
        self._pause(self.latency.reboot)
        with vm.lock:
            now = self.clock()
            host.write_due_events(now)  # what was due before the restart was written before it
            complete_reboot(host, host.guest_time(now), shutdown_at=shutdown)
            if name in self.noise:
                noise = self.noise[name]
                noise.after_boot(host, now, after_servicing=noise.serviced)
            if "reboot-never-returns" in vm.faults:
                vm.sticky_faults.add("never-ready")
            vm.ready_at = self._ready_time(vm)
            self.persist(name, dirty=True)
        self._notify()

    # ------------------------------------------------------------ noise (docs/twin.md, "Noise")

    def guest_now(self, name: str) -> dt.datetime:
        """The guest's own clock: the true time plus its skew (what the guest stamps everything with)."""
        return self.host(name).guest_time(self.clock())

    def after_install(self, name: str, host: WindowsHost) -> None:
        if name in self.noise:
            self.noise[name].after_install(host, self.clock())

    def settle(self, name: str, host: WindowsHost) -> None:
        """What happened on the guest since it was last looked at: delayed starts and scheduled events that came
        due are written now, stamped with the time they happened (nothing is visible before its time)."""
        now = self.clock()
        if name in self.noise:
            self.noise[name].settle(host, now)
        host.write_due_events(now)

    def refuses_remoting(self, name: str) -> str | None:
        """Why the guest's WinRM listener refuses connections, or None: the WinRM service is not running, or no
        enabled inbound Allow rule opens the WinRM port any more (the guest's firewall, not the twin, decides)."""
        vm = self.vm(name)
        host = vm.host
        if host is None or not vm.powered_on:
            return None
        winrm = host.services.get("WinRM")
        if winrm is None or winrm.state != "Running":
            return "the WinRM service is not running"
        settings = self.lab.remoting.settings
        port = getattr(settings, "port", None) or (5986 if getattr(settings, "ssl", False) else 5985)
        if not any(host.firewall_profiles.values()) or not any(p.enabled for p in host.firewall_profiles.values()):
            return None  # the firewall is off: nothing filters the port
        opening = any(r.enabled and r.direction == "Inbound" and r.action == "Allow"
                      and r.protocol in ("TCP", "Any") and str(port) in r.local_port
                      for r in host.firewall_rules.values())
        return None if opening else f"no enabled inbound firewall rule allows TCP {port} (WinRM)"

    def power_off(self, name: str) -> None:
        vm = self.vm(name)
        with vm.lock:
            vm.powered_on = False
            vm.ready_at = None
        self._notify()


def _snapshot_conditions(vm: TwinVm, snap: WindowsHost) -> None:
    """Faults that are part of the snapshot itself: 'pending-reboot' (taken with a reboot pending)."""
    if "pending-reboot" in vm.faults:
        snap.reboot.cbs_reboot_pending = True


def _noise_for(lab: Lab) -> dict[str, HostNoise]:
    settings = lab.hypervisor.settings if lab.hypervisor.kind == "twin" else None
    if settings is None or getattr(settings, "noise", "quiet") != "realistic":
        return {}
    knobs = NoiseSettings(realistic=True, seed=int(settings.seed or 0))
    return {vm.name: HostNoise(knobs, vm.name) for vm in [*lab.vms, *lab.control_vms]}


def snapshot_identifier(spec: VmSpec) -> str:
    return f"twin:{spec.name}/{spec.snapshot}@{spec.image}"


def build_twin_lab(lab: Lab, extra_catalog_dirs: list[Path], *, durable: bool,
                   stop: threading.Event | None = None, inject_faults: bool = True) -> TwinLab:
    """``durable``: the VMs' disks and files live in the state directory, shared with every run of the lab name
    there, so only a twin that acts under the VMs' leases (the lab kind's) may be durable; any other (a twin
    driven in-process) keeps them in a private folder, or its reverts would sweep a leased VM's files away."""
    catalog = check_twin_inputs(lab, extra_catalog_dirs)
    latency = lab.hypervisor.settings.latency if lab.hypervisor.kind == "twin" else TwinLatency()
    disks = TwinDisks(lab.name) if durable else None
    return TwinLab(lab, catalog, latency=latency, stop=stop, disks=disks, inject_faults=inject_faults)


def check_twin_inputs(lab: Lab, extra_catalog_dirs: list[Path]) -> "Catalog":
    """Load the twin catalogue and check the lab's images and faults against it: ConfigError (exit 4) before
    anything runs, never lab trouble halfway through a run."""
    from patchgate_twin.catalog import Catalog

    catalog = Catalog.load(extra_catalog_dirs)
    where = str(lab.source) if lab.source else None
    for index, vm in enumerate(lab.vms):
        pair = vm.control_pair.faults if vm.control_pair else []
        for field_name, faults in ((f"vms[{index}].faults", vm.faults), (f"vms[{index}].control_pair.faults", pair)):
            for fault in faults:
                kind = fault.partition(":")[0].strip()
                if kind in HYPERV_FAULTS and lab.hypervisor.kind != "hyperv":
                    raise ConfigError(f"twin fault '{kind}' acts on a Hyper-V host: it needs hypervisor.kind "
                                      "hyperv with guests: twin", file=where, field=field_name)
                if kind == "psdirect-refused" and lab.remoting.kind != "psdirect":
                    raise ConfigError("twin fault 'psdirect-refused' acts on PowerShell Direct: it needs remoting.kind "
                                      "psdirect", file=where, field=field_name)
                if kind not in ALL_FAULTS:
                    raise ConfigError(f"unknown twin fault '{kind}' (known: {', '.join(sorted(ALL_FAULTS))})",
                                      file=where, field=field_name)
    known = set(catalog.images())
    for index, vm in enumerate(lab.vms):
        if vm.image and vm.image not in known:
            raise ConfigError(f"unknown twin image '{vm.image}' (known: {', '.join(sorted(known))}; add more "
                              "with --twin-catalog DIR)", file=str(lab.source) if lab.source else None,
                              field=f"vms[{index}].image")
    trusted = getattr(lab.hypervisor.settings, "trusted_ca", None)
    if trusted and not Path(trusted).is_file():
        raise ConfigError(f"the twin VMs' trusted CA file {trusted} does not exist", file=where,
                          field="hypervisor.settings.trusted_ca")
    return catalog
