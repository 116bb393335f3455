"""The twin lab: one WindowsHost per VM, named snapshots, power and readiness, injected faults.

The hypervisor provider (hypervisors/twin.py), the in-process remoting and the WSMan endpoint all act on this one
object, so a revert seen by one face is seen by all.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from patchgate.config.lab import Lab, TwinLatency, VmSpec
from patchgate.errors import ConfigError, HypervisorError, LabTimeout
from patchgate.twin.faults import Fault, parse_faults
from patchgate.twin.model import WindowsHost, utcnow

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


class TwinLab:
    """All twin VMs of one lab run. Thread-safe per VM."""

    def __init__(self, lab: Lab, catalog: "Catalog", *, latency: TwinLatency | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, stop: threading.Event | None = None) -> None:
        from patchgate.twin.catalog import Catalog  # local: the catalogue module imports model types

        assert isinstance(catalog, Catalog)
        self.lab = lab
        self.catalog = catalog
        self.latency = latency or TwinLatency()
        self.clock = clock
        self.stop = stop or threading.Event()
        where = str(lab.source) if lab.source else None
        self.vms: dict[str, TwinVm] = {
            spec.name: TwinVm(spec=spec, faults=parse_faults(spec.faults, where=where)) for spec in lab.vms}
        self._changed = threading.Condition()

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
                vm.snapshots[vm.spec.snapshot] = snap
            return snap

    def snapshot_identifier(self, name: str) -> str:
        vm = self.vm(name)
        return f"twin:{vm.spec.name}/{vm.spec.snapshot}@{vm.spec.image}"

    def revert(self, name: str) -> None:
        vm = self.vm(name)
        if "revert-fails" in vm.faults:
            raise HypervisorError(f"revert to snapshot '{vm.spec.snapshot}' failed: the twin injects "
                                  "fault 'revert-fails'", vm=name, step="revert")
        self._pause(self.latency.revert, interruptible=False)
        snap = self.snapshot_state(name)
        with vm.lock:
            vm.host = snap.clone()
            vm.powered_on = False  # a snapshot without memory: reverted VMs are off
            vm.ready_at = None
            vm.sticky_faults.clear()
            vm.reverts += 1
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
            vm.host.last_boot_up_time = self.clock()
            vm.ready_at = self._ready_time(vm)
        self._notify()

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
        from patchgate.twin.behaviour import complete_reboot

        vm = self.vm(name)
        with vm.lock:
            host = self.host(name)
            vm.ready_at = None
            vm.reboots += 1
        self._notify()
        self._pause(self.latency.reboot)
        with vm.lock:
            complete_reboot(host, self.clock())
            host.last_boot_up_time = self.clock()
            if "reboot-never-returns" in vm.faults:
                vm.sticky_faults.add("never-ready")
            vm.ready_at = self._ready_time(vm)
        self._notify()

    def power_off(self, name: str) -> None:
        vm = self.vm(name)
        with vm.lock:
            vm.powered_on = False
            vm.ready_at = None
        self._notify()

    def counters(self) -> dict[str, dict[str, int]]:
        return {name: {"reverts": vm.reverts, "reboots": vm.reboots} for name, vm in self.vms.items()}


def build_twin_lab(lab: Lab, extra_catalog_dirs: list[Path], *, stop: threading.Event | None = None) -> TwinLab:
    from patchgate.twin.catalog import Catalog

    catalog = Catalog.load(extra_catalog_dirs)
    known = set(catalog.images())
    for index, vm in enumerate(lab.vms):
        if vm.image and vm.image not in known:
            raise ConfigError(f"unknown twin image '{vm.image}' (known: {', '.join(sorted(known))}; add more "
                              "with --twin-catalog DIR)", file=str(lab.source) if lab.source else None,
                              field=f"vms[{index}].image")
    latency = lab.hypervisor.settings.latency if lab.hypervisor.kind == "twin" else TwinLatency()
    return TwinLab(lab, catalog, latency=latency, stop=stop)
