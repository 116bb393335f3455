"""The twin as a hypervisor: revert, power and readiness act on the TwinLab model (here or in its own process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from patchgate.config.lab import VmSpec
from patchgate.hypervisors.base import GuestEndpoint, SnapshotRef
from patchgate_twin.lab import TwinLab
from patchgate_twin.model import TIME_SCALE

if TYPE_CHECKING:
    from patchgate_twin.process import RemoteTwinLab


class TwinHypervisor:
    kind = "twin"
    cert_validation = True  # nothing to validate: no TLS between patchgate and its own twin
    guest_time_scale = TIME_SCALE  # the twin's guests run Windows time fast (docs/twin.md)

    def __init__(self, lab: "TwinLab | RemoteTwinLab", endpoint_for: Callable[[str], GuestEndpoint],
                 on_guest_restart: Callable[[str], object] | None = None) -> None:
        self.twin = lab
        self._endpoint_for = endpoint_for
        self._on_guest_restart = on_guest_restart  # a restarted guest forgets its WinRM shells

    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def snapshot(self, vm: VmSpec) -> SnapshotRef:
        self.twin.ensure_snapshot(vm.name)
        return SnapshotRef(vm=vm.name, name=vm.snapshot, identifier=self.twin.snapshot_identifier(vm.name),
                           extra={"image": vm.image or ""})

    def revert(self, vm: VmSpec) -> SnapshotRef:
        self.twin.revert(vm.name)
        self._guest_restarted(vm.name)
        return self.snapshot(vm)

    def power_on(self, vm: VmSpec) -> None:
        self.twin.power_on(vm.name)

    def power_state(self, vm: VmSpec) -> str:
        return self.twin.power_state(vm.name)

    def wait_ready(self, vm: VmSpec, timeout: float) -> GuestEndpoint:
        self.twin.wait_ready(vm.name, timeout)
        return self._endpoint_for(vm.name)

    def reboot(self, vm: VmSpec) -> None:
        self.twin.reboot(vm.name)
        self._guest_restarted(vm.name)

    def _guest_restarted(self, vm_name: str) -> None:
        if self._on_guest_restart is not None:
            try:
                self._on_guest_restart(vm_name)
            except KeyError:
                pass  # no endpoint started for this VM yet

    def mark_in_use(self, vm: VmSpec, run_id: str | None) -> None:
        return None  # the twin lives and dies with the run

    def keep_failure_snapshot(self, vm: VmSpec, run_id: str) -> str | None:
        name = f"patchgate-failure-{run_id}"
        self.twin.keep_snapshot(vm.name, name)
        return name
