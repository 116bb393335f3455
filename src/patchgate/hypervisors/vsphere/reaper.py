"""Clean up after runs that died without cleaning up (SIGKILL, power loss, a CI runner torn down).

A run tags each VM it uses (see runtag.py). A tag whose run is gone means the VM may hold a half-installed
candidate: the reaper reverts it to its lab snapshot and clears the tag. "Gone" is decided without
guessing where it can be checked: a tag written on *this* host names a pid, which either runs (and started
before the tag) or not. A tag from another host cannot be checked from here, so it counts as abandoned
only once it is older than ``reap_max_age``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from patchgate.config.lab import VmSpec
from patchgate.errors import LabError
from patchgate.hypervisors.vsphere.provider import VsphereHypervisor
from patchgate.hypervisors.vsphere.runtag import RunTag
from patchgate.run.liveness import process_alive as local_process_alive

log = logging.getLogger("patchgate.hypervisors.vsphere")

# Tag times are whole seconds and /proc start times are clock ticks from a whole-second boot time.

Outcome = Literal["reverted", "would-revert", "alive", "failed", "foreign"]


@dataclass(frozen=True)
class ReapAction:
    vm: str
    outcome: Outcome
    reason: str
    run: str | None = None
    host: str | None = None
    pid: int | None = None
    started: str | None = None
    snapshot: str | None = None


def is_abandoned(tag: RunTag, *, max_age: float, now: datetime | None = None,
                 this_host: str | None = None,
                 alive: Callable[[int, datetime | None], bool] = local_process_alive) -> tuple[bool, str]:
    now = now or datetime.now(UTC)
    host = this_host or socket.gethostname()
    started = tag.started_at()
    if tag.host == host:
        if alive(tag.pid, started):
            return False, f"run {tag.run} is still running here (pid {tag.pid})"
        return True, f"run {tag.run} (pid {tag.pid} on this host) is no longer running"
    if started is None:
        return False, f"run {tag.run} on host {tag.host} has an unreadable start time '{tag.started}'"
    age = (now - started).total_seconds()
    if age > max_age:
        return True, f"run {tag.run} on host {tag.host} started {age / 3600:.1f} h ago (max age " \
                     f"{max_age / 3600:.1f} h)"
    return False, (f"run {tag.run} on host {tag.host} started {age / 60:.0f} min ago; cannot check that "
                   "host from here, leaving it")


def reap(hypervisor: VsphereHypervisor, vms: Sequence[VmSpec], *, max_age: float | None = None,
         dry_run: bool = False, now: datetime | None = None) -> list[ReapAction]:
    """Revert and untag the given lab VMs whose tagging run is gone. Never raises for one VM's trouble:
    each VM gets its own ReapAction, so one broken VM does not hide the others. Any provider with
    ``raw_run_tag``, ``revert``, ``mark_in_use`` and ``settings.reap_max_age`` will do (Hyper-V's keeps its tag in
    the VM's Notes)."""
    limit = hypervisor.settings.reap_max_age if max_age is None else max_age
    actions: list[ReapAction] = []
    for vm in vms:
        try:
            raw = hypervisor.raw_run_tag(vm)
        except LabError as exc:
            actions.append(ReapAction(vm=vm.name, outcome="failed", reason=str(exc)))
            continue
        if not raw:
            continue
        tag = RunTag.parse(raw)
        if tag is None:
            actions.append(ReapAction(vm=vm.name, outcome="foreign",
                                      reason="custom attribute holds a value patchgate did not write: "
                                             f"{raw[:80]!r}"))
            continue
        abandoned, why = is_abandoned(tag, max_age=limit, now=now)
        base = dict(vm=vm.name, run=tag.run, host=tag.host, pid=tag.pid, started=tag.started)
        if not abandoned:
            actions.append(ReapAction(outcome="alive", reason=why, **base))  # type: ignore[arg-type]
            continue
        if dry_run:
            actions.append(ReapAction(outcome="would-revert", reason=why, snapshot=vm.snapshot,
                                      **base))  # type: ignore[arg-type]
            continue
        try:
            snap = hypervisor.revert(vm)
            hypervisor.mark_in_use(vm, None)
        except LabError as exc:
            log.error("reap %s: %s", vm.name, exc)
            actions.append(ReapAction(outcome="failed", reason=f"{why}; revert failed: {exc}",
                                      snapshot=vm.snapshot, **base))  # type: ignore[arg-type]
            continue
        log.warning("reaped vm %s: %s; reverted to %s", vm.name, why, snap.name)
        actions.append(ReapAction(outcome="reverted", reason=why, snapshot=snap.name,
                                  **base))  # type: ignore[arg-type]
    return actions
