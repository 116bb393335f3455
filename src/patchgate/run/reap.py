"""``patchgate reap --lab LAB``: restore what runs that died without cleaning up left behind.

A run writes every mutation to its ledger before it happens (patchgate.run.ledger). A run killed with SIGKILL (or a
pytest-xdist worker that died, or a CI runner torn down) never reaches its restore, so its ledger still lists VMs
it reverted but did not restore. The reaper:

1. removes stale leases: local lock files whose holder is gone (the kernel already freed the lock; the sidecar
   naming the dead holder stays until someone takes the VM), and Vault leases held by a process of this host that
   no longer runs (they would otherwise block the VM until their TTL runs out);
2. restores every VM a dead run left dirty, under the VM's lease (a live run's VM is never touched: its lease is
   held), by reverting it to its lab snapshot; on a twin lab also any twin disk left changed;
3. undoes an approval a dead run left on a WSUS outside the lab (its ledger's ``wsus_approve`` with ``external``
   and no ``wsus_unapprove``; docs/wsus.md), with the same op the run's end would have used;
4. records ``reaped`` in the dead run's ledger, and ends that ledger once nothing of it is left.

On vSphere the run tags on the VMs are the second witness: the vSphere reaper reverts VMs whose tagging run is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from patchgate.config.lab import Lab, VmSpec
from patchgate.errors import LabError, LeaseError
from patchgate.run.ledger import LedgerState, append_entry, ledgers, read_ledger
from patchgate.secrets.redact import redactor

log = logging.getLogger("patchgate.run.reap")

REAP_LEASE_TIMEOUT = 2.0  # a VM whose lease is held this long belongs to a live run: leave it


@dataclass(frozen=True)
class ReapItem:
    vm: str
    outcome: str  # restored | would-restore | lease-removed | would-remove-lease | unapproved | would-unapprove |
    # busy | failed | unknown
    detail: str
    run: str | None = None

    def line(self) -> str:
        return f"  {self.outcome:<18} {self.vm:<18} {self.detail}"


@dataclass
class ReapReport:
    lab: str
    dry_run: bool
    items: list[ReapItem] = field(default_factory=list)

    @property
    def failed(self) -> list[ReapItem]:
        return [i for i in self.items if i.outcome in ("failed", "busy")]

    @property
    def restored(self) -> list[str]:
        return [i.vm for i in self.items if i.outcome == "restored"]

    def render(self) -> str:
        if not self.items:
            return f"patchgate reap: nothing to reap in lab {self.lab} (no dead run left a VM changed or a lease " \
                   "held)\n"
        head = f"patchgate reap: lab {self.lab}{' (dry run: nothing changed)' if self.dry_run else ''}"
        return "\n".join([head, *(i.line() for i in self.items)]) + "\n"


# ------------------------------------------------------------------ leases

def _remove_stale_leases(manager: object, report: ReapReport, *, vms: set[str] | None) -> None:
    from patchgate.leases.local import LocalLeaseManager
    from patchgate.run.liveness import process_alive

    here = socket.gethostname()
    for info in manager.list_leases():  # type: ignore[attr-defined]
        if vms is not None and info.vm not in vms:
            continue
        stale = info.state == "stale" or (
            info.state in ("held", "expired") and info.host == here and not process_alive(info.pid, info.acquired))
        if not stale:
            continue
        what = f"lease of run {info.run_id} (host {info.host}, pid {info.pid}, no longer running)"
        if report.dry_run:
            report.items.append(ReapItem(info.vm, "would-remove-lease", what, info.run_id))
            continue
        try:
            if isinstance(manager, LocalLeaseManager):
                # take and give back: the lock is free; release removes the dead holder's sidecar
                manager.acquire([info.vm], f"reap-{os.getpid()}", timeout=REAP_LEASE_TIMEOUT,
                                auto_renew=False).release()
            else:
                manager.release_for_dead_holder(info.vm, info.lease_id,  # type: ignore[attr-defined]
                                                f"reap pid {os.getpid()}")
        except LabError as exc:
            report.items.append(ReapItem(info.vm, "failed", f"could not remove the {what}: {exc.detail}",
                                         info.run_id))
            continue
        report.items.append(ReapItem(info.vm, "lease-removed", what, info.run_id))


# ------------------------------------------------------------------ VMs

@dataclass
class _Dirty:
    vm: VmSpec
    why: str
    ledgers: list[LedgerState] = field(default_factory=list)


def _dirty_vms(lab: Lab, states: list[LedgerState], changed_vms: Callable[[], dict[str, str]] | None,
               report: ReapReport,
               *, scan_disks: bool, leases: list) -> dict[str, _Dirty]:
    found: dict[str, _Dirty] = {}
    claimed: set[str] = set()  # dirty VMs of runs still alive: theirs, not ours
    for state in states:
        claimed.update(set(state.dirty_vms) - set(state.abandoned_vms()))
    for state in states:
        for name, _snapshot in state.abandoned_vms().items():
            try:
                spec = lab.vm(name)
            except KeyError:
                report.items.append(ReapItem(name, "unknown", f"run {state.run_id} left it changed, but the lab "
                                             "file no longer lists it: restore it by hand", state.run_id))
                continue
            pid = state.dirtied_by.get(name, (state.pid, None))[0]
            entry = found.setdefault(name, _Dirty(spec, f"left changed by run {state.run_id} (pid {pid} no "
                                                        "longer running)"))
            entry.ledgers.append(state)
    if changed_vms is not None and scan_disks:  # the lab's own word on which disks differ from their snapshot
        held = {info.vm for info in leases if info.state == "held"}
        for name, why in changed_vms().items():
            if name not in found and name not in claimed and name not in held:
                found[name] = _Dirty(lab.vm(name), f"{why} (no live run holds it)")
    return found


def _restore(hypervisor: object, lease_manager: object, dirty: _Dirty, report: ReapReport) -> None:
    name = dirty.vm.name
    if report.dry_run:
        report.items.append(ReapItem(name, "would-restore", f"to snapshot '{dirty.vm.snapshot}': {dirty.why}"))
        return
    try:
        lease = lease_manager.acquire([name], f"reap-{os.getpid()}", timeout=REAP_LEASE_TIMEOUT,  # type: ignore
                                      auto_renew=False)
    except LeaseError as exc:
        report.items.append(ReapItem(name, "busy", f"left alone: {exc.detail}"))
        return
    try:
        for state in dirty.ledgers:
            append_entry(state.path, "reap", vm=name, snapshot=dirty.vm.snapshot)
        snap = hypervisor.revert(dirty.vm)  # type: ignore[attr-defined]
        hypervisor.mark_in_use(dirty.vm, None)  # type: ignore[attr-defined]
    except LabError as exc:
        report.items.append(ReapItem(name, "failed", f"revert to '{dirty.vm.snapshot}' failed: {exc.detail}"))
        return
    finally:
        lease.release()
    for state in dirty.ledgers:
        append_entry(state.path, "reaped", vm=name, snapshot=dirty.vm.snapshot)
    report.items.append(ReapItem(name, "restored", f"to snapshot '{snap.name}': {dirty.why}"))


def _undo_external_approval(lab: Lab, state: LedgerState, report: ReapReport) -> None:
    """A dead run's approval on the lab's WSUS outside the lab: undone as the run's end would have (docs/wsus.md)."""
    pending = state.abandoned_wsus()
    if pending is None:
        return
    from patchgate.wsus.external import external_server, undo_approval
    from patchgate.wsus.ops import Approval

    name, kb, group = str(pending["server"]), str(pending["kb"]), str(pending["group"])
    what = f"approval of {kb} for group {group}, left by run {state.run_id}"
    if lab.wsus is None or lab.wsus.external is None or lab.wsus.server_name != name:
        report.items.append(ReapItem(name, "unknown", f"{what}: the lab file no longer names that WSUS; remove "
                                     "the approval on the server by hand", state.run_id))
        return
    if report.dry_run:
        report.items.append(ReapItem(name, "would-unapprove", what, state.run_id))
        return
    approval = Approval.from_dict(pending["approval"]) if pending.get("approval") else \
        Approval.unknown(name, kb, group)
    try:
        undone = undo_approval(external_server(lab), approval)
    except Exception as exc:  # noqa: BLE001 - said in the report; the ledger keeps it pending for the next reap
        report.items.append(ReapItem(name, "failed", redactor.redact(f"could not undo the {what}: {exc}"),
                                     state.run_id))
        return
    append_entry(state.path, "wsus_unapprove", server=name, external=True, kb=kb, group=group,
                 removed=undone.get("Removed"), reaped=True)
    report.items.append(ReapItem(name, "unapproved", f"{what} ({undone.get('Removed')} approval(s) removed)",
                                 state.run_id))


def _components(lab: Lab, kind_catalogs: list[Path]) -> Any:
    """The lab's components as its kind builds them for the reaper: no injected faults (they describe trouble
    during a validation run, and the reaper is the operator cleaning up after one)."""
    from patchgate.run.components import build_components

    components = build_components(lab, kind_catalogs=kind_catalogs, stop=threading.Event(), inject_faults=False)
    components.hypervisor.connect()
    return components


def reap_lab(lab: Lab, *, dry_run: bool = False, run_id: str | None = None,
             kind_catalogs: list[Path] | None = None) -> ReapReport:
    """Restore VMs and remove leases that dead runs of ``lab`` left behind (only run ``run_id``'s, if given)."""
    from patchgate.leases import build_lease_manager

    report = ReapReport(lab.name, dry_run)
    states = [s for s in ledgers(lab.name) if run_id is None or s.run_id == run_id]
    lease_manager = build_lease_manager(lab)
    components = _components(lab, kind_catalogs or [])
    hypervisor = components.hypervisor
    changed = components.parts.changed_vms
    try:
        scope = None
        if run_id is not None:  # the VMs this run's dead processes changed or still hold a lease record on
            scope = {vm for s in states for vm in s.abandoned_vms()}
            scope |= {info.vm for info in lease_manager.list_leases() if info.run_id == run_id}
        _remove_stale_leases(lease_manager, report, vms=scope)
        dirty = _dirty_vms(lab, states, changed, report, scan_disks=run_id is None,
                           leases=lease_manager.list_leases() if run_id is None else [])
        for item in dirty.values():
            _restore(hypervisor, lease_manager, item, report)
        for state in states:
            _undo_external_approval(lab, state, report)
        if run_id is None and hasattr(getattr(hypervisor, "inner", hypervisor), "raw_run_tag"):
            _run_tags(hypervisor, lab, report, dry_run=dry_run, done=set(dirty))
        if not dry_run:
            for state in states:
                fresh = read_ledger(state.path)
                if not fresh.ended and not fresh.alive and not fresh.dirty_vms and fresh.pending_wsus is None:
                    append_entry(state.path, "end", outcome="reaped")  # nothing of that run is left
    finally:
        lease_manager.close()
        components.close()
    return report


def _run_tags(hypervisor: object, lab: Lab, report: ReapReport, *, dry_run: bool, done: set[str]) -> None:
    """Second witness where the hypervisor tags VMs (vSphere's custom attribute, Hyper-V's Notes): VMs whose run
    tag names a run that is gone (its ledger lost, or written on another host)."""
    from patchgate.hypervisors.vsphere.reaper import reap as reap_tags

    target = getattr(hypervisor, "inner", hypervisor)
    vms = [vm for vm in [*lab.vms, *lab.control_vms] if vm.name not in done]  # the control pairs too
    for action in reap_tags(target, vms, dry_run=dry_run):  # type: ignore[arg-type]
        if action.outcome == "alive":
            continue
        outcome = {"reverted": "restored", "would-revert": "would-restore"}.get(action.outcome, action.outcome)
        report.items.append(ReapItem(action.vm, outcome, f"(run tag on the VM) {action.reason}", action.run))
