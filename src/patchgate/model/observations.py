"""What a lifecycle observed on one VM; the suites only ever read these."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from patchgate.config.lab import VmSpec
from patchgate.errors import LabError
from patchgate.hypervisors.base import GuestEndpoint, SnapshotRef


@dataclass
class Step:
    """One timed lifecycle step, shown in logs, progress, Allure and the run manifest."""

    name: str
    started_at: dt.datetime
    duration: float = 0.0
    ok: bool = True
    detail: str = ""
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "started_at": self.started_at.isoformat(), "duration_s": round(self.duration, 3),
                "ok": self.ok, "detail": self.detail, "attempts": self.attempts}


@dataclass
class InstallRecord:
    kb: str
    exit_code: int
    restart_needed: bool
    output: list[str]
    started_at: dt.datetime
    finished_at: dt.datetime
    packages: list[dict] = field(default_factory=list)  # Get-WindowsPackage -Online: Installed vs InstallPending


@dataclass
class VmObservation:
    vm: VmSpec
    snapshot: SnapshotRef | None = None
    endpoint: GuestEndpoint | None = None
    baseline: Any = None  # patchgate.model.posture.Posture
    post: Any = None
    baseline_raw: str | None = None
    post_raw: str | None = None
    install: InstallRecord | None = None
    rebooted: bool = False
    wsus_sync: dict[str, Any] | None = None
    # lab `install: {via: wsus}`: on a client what WSUS offered and what it installed (docs/wsus.md); on the
    # server the approval and its undo
    wsus: dict[str, Any] | None = None
    # the guest's clock minus the controller's (seconds) at each capture ("baseline", "post"): times the guest
    # reports are compared on its own clock (docs/invariants.md, wsus.sync)
    clock_offsets: dict[str, float | None] = field(default_factory=dict)
    # set when the guest runs (per the hypervisor) but refused remoting after the update's restart:
    # guest state, address, port and the error (management.reachable)
    unreachable: dict[str, Any] | None = None
    # the control run (lab `control: reboot`): the same VM restored and taken through the lifecycle without the
    # candidate, or its control_pair (`control: {vm: paired}`) at the same time; ``control_error`` says why it
    # could not finish (its checks then stand on their own)
    control: "VmObservation | None" = None
    control_error: str | None = None
    steps: list[Step] = field(default_factory=list)
    error: LabError | None = None
    restore_error: LabError | None = None
    lease_lost: str | None = None  # this run lost the VM's lease: nothing it saw of the VM can approve
    restored: bool = False
    kept: bool = False
    failure_snapshot: str | None = None

    @property
    def name(self) -> str:
        return self.vm.name

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def failed_step(self) -> str | None:
        if self.error is not None:
            return self.error.step
        return None
