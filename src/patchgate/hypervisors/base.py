"""What the lifecycle needs from a hypervisor: revert, power, readiness, reboot. Nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from patchgate.config.lab import VmSpec


@dataclass(frozen=True)
class GuestEndpoint:
    """Where a ready guest can be reached (the remoting layer connects here)."""

    address: str
    port: int | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class SnapshotRef:
    """The snapshot a VM was reverted to, recorded as evidence."""

    vm: str
    name: str
    identifier: str
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Hypervisor(Protocol):
    """Implementations raise HypervisorError / LabTimeout, naming the VM and operation."""

    kind: str
    cert_validation: bool
    # Optional: how many of the lab's seconds one second of the guests' time takes (1.0 when absent). The twin's
    # guests run Windows time fast (docs/twin.md), so waits stated in guest time (timeouts.settle_min) shrink.

    def connect(self) -> None:
        """Open the one session this run uses."""

    def close(self) -> None:
        """Log out; safe to call twice."""

    def snapshot(self, vm: VmSpec) -> SnapshotRef:
        """Resolve vm.snapshot (missing or ambiguous is an error)."""

    def revert(self, vm: VmSpec) -> SnapshotRef:
        """Revert to vm.snapshot; refuses a VM with a running task or pending question."""

    def power_on(self, vm: VmSpec) -> None:
        """Power on when off; no-op when already on."""

    def power_state(self, vm: VmSpec) -> str:
        """The VM's power state as vSphere names it: ``poweredOn``, ``poweredOff`` or ``suspended`` (read only)."""

    def wait_ready(self, vm: VmSpec, timeout: float) -> GuestEndpoint:
        """Wait for tools/heartbeat/IP (or the twin's equivalent) and return where to connect."""

    def reboot(self, vm: VmSpec) -> None:
        """Restart the guest (the caller waits for readiness again)."""

    def mark_in_use(self, vm: VmSpec, run_id: str | None) -> None:
        """Tag the VM with the run id (None clears it) so a reaper can find leftovers."""

    def keep_failure_snapshot(self, vm: VmSpec, run_id: str) -> str | None:
        """Take an evidence snapshot before the final revert when the lab asks for it."""
