"""``patchgate doctor``: read each VM as the hypervisor has it (``--boot``: boot it from its snapshot as a run
does and restore it afterwards), install nothing, and say per VM what patchgate would trip over
(docs/doctor.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from patchgate.config.candidate import Candidate
from patchgate.config.lab import Lab
from patchgate.doctor.checks import (Check, account_checks, assumption_checks, identity_checks, staging_check,
                                     webadmin_check)
from patchgate.wsus.doctor import wsus_install_checks
from patchgate.doctor.facts import GuestFacts, read_facts
from patchgate.doctor.preflight import judge_preflight
from patchgate.errors import EXIT_INCONCLUSIVE, LabError
from patchgate.run.labrun import LabRun, RunSelection
from patchgate.run.lifecycle import VmLifecycle
from patchgate.model.observations import Step

EXIT_OK = 0

# A failed lifecycle step of doctor, as a check: (area, check name, what to do).
STEP_CHECKS: dict[str, tuple[str, str, str]] = {
    "snapshot": ("hypervisor", "VM and snapshot",
                 "check the lab file's vms[].name and snapshot against the hypervisor's inventory"),
    "power_state": ("hypervisor", "power state", "check the VM in the hypervisor console"),
    "revert": ("hypervisor", "revert to snapshot",
               "check the VM has no running task or pending question and the account may revert snapshots"),
    "power_on": ("hypervisor", "power on", "check the VM in the hypervisor console (host, licence, resources)"),
    "wait_ready": ("hypervisor", "guest ready",
                   ("the guest did not report ready: check VMware Tools (or the fault a simulated lab injects), its "
                    "IP address and its console")),
    "connect": ("remoting", "WinRM reachable and auth",
                ("check the WinRM listener (winrm enumerate winrm/config/listener), the firewall (5985/5986), the "
                 "lab file's remoting.auth and the VM's credentials")),
    "preflight": ("remoting", "preflight script",
                  "run src/patchgate/doctor/preflight.ps1 on the VM as the lab account and see what it says"),
    "capture": ("assumption", "posture capture",
                "a probe could not be read: run the probes by hand (docs/probes.md) and report the output"),
    "restore": ("hypervisor", "restore", "revert the VM by hand or with 'patchgate reap'"),
    # --noise: the restart without an install and the capture after it
    "reboot": ("noise", "restart", "the guest did not restart or answer again: check it in the hypervisor console"),
    "wait_ready_after_reboot": ("noise", "guest ready after the restart",
                                "the guest did not report ready within timeouts.reboot: check its console"),
    "capture_post": ("noise", "capture after the restart",
                     "a probe could not be read after the restart: run the probes by hand (docs/probes.md)"),
}

# The checks that need the guest running, as (area, check, the only role it applies to or None): a powered-off VM
# gets a warning for each instead of a reading.
GUEST_CHECKS: tuple[tuple[str, str, str | None], ...] = (
    ("remoting", "WinRM reachable and auth", None), ("remoting", "admin token", None),
    ("remoting", "MaxMemoryPerShellMB", None), ("remoting", "MaxEnvelopeSizekb", None),
    ("remoting", "language mode", None), ("vm", "free space", None), ("vm", "pending reboot", None),
    ("vm", "pending packages", None), ("vm", "clock", None), ("vm", "edition", None),
    ("assumption", "BootId", None), ("assumption", "WebAdministration", "wsus-server"),
    ("assumption", "hotpatch enrollment", None), ("assumption", "Get-HotFix", None),
    ("assumption", "WSUS API", "wsus-server"),
)
BOOT_ADVICE = "start it, or run `patchgate doctor --boot` (boots it from its snapshot and restores it afterwards)"


def powered_off_checks(state: str, role: str) -> list[Check]:
    """What doctor says about a VM it did not start: the power state, and a warning per guest check."""
    words = {"poweredOff": "powered off", "suspended": "suspended"}.get(state, state)
    checks = [Check("hypervisor", "power state", "warn", state, BOOT_ADVICE)]
    checks += [Check(area, name, "warn", f"not read: the VM is {words}", f"{words}: {BOOT_ADVICE}")
               for area, name, only in GUEST_CHECKS if only in (None, role)]
    return checks


class DoctorLifecycle(VmLifecycle):
    """A VM read as it is: its snapshot and power state from the hypervisor, then, when it runs, the preflight
    and one posture capture. Nothing a restore would have to undo: no revert, no power change, no install."""

    installs = False
    facts: GuestFacts | None = None
    facts_raw: str | None = None  # what preflight.ps1 printed (transcripts)
    power_state: str | None = None  # what the hypervisor reported; not poweredOn: the guest was not read
    checks: list[Check]

    def _prepare(self) -> None:
        ctx, vm, obs = self.ctx, self.vm, self.obs
        self.checks = []
        with self.step("snapshot"):
            obs.snapshot = ctx.hypervisor.snapshot(vm)
        self._start()
        if self.power_state != "poweredOn":
            return
        with self.step("wait_ready"):
            obs.endpoint = ctx.hypervisor.wait_ready(vm, ctx.lab.timeouts.ready)
        self._connect()
        self._read()

    def _start(self) -> None:
        """Read the power state; a VM that is off stays off (``--boot`` starts it)."""
        with self.step("power_state") as record:
            self.power_state = record.detail = self.ctx.hypervisor.power_state(self.vm)

    def _read(self) -> None:
        ctx, vm, obs = self.ctx, self.vm, self.obs
        with self.step("preflight"):
            assert self.session is not None
            self.facts, self.facts_raw = read_facts(self.session, timeout=ctx.lab.timeouts.capture)
            self.checks += [*account_checks(self.facts), *judge_preflight(self.facts, ctx.candidate),
                            *identity_checks(self.facts)]
            if vm.role == "wsus-server":  # the WSUS probe is the one that reads IIS
                self.checks.append(webadmin_check(self.facts, vm.role))
        with self.step("capture", limit="capture"):
            obs.baseline, obs.baseline_raw = self._capture(since=None)
        self.checks += assumption_checks(obs.baseline, vm.role)  # type: ignore[arg-type]
        self.checks += wsus_install_checks(ctx.lab, vm, obs.baseline)


class BootingDoctorLifecycle(DoctorLifecycle):
    """``doctor --boot``: boot the VM from its snapshot as a run does, read it, and restore it afterwards as
    every run does (the run's restore reverts it)."""

    def _start(self) -> None:
        ctx, vm = self.ctx, self.vm
        with self.step("revert", limit="revert", mutates=True):
            ctx.ledger.record("revert", vm=vm.name, snapshot=vm.snapshot)
            self._touched = True
            self._retry("revert", lambda: ctx.hypervisor.revert(vm))
        with self.step("power_on", mutates=True):
            self._retry("power on", lambda: ctx.hypervisor.power_on(vm))
        self.power_state = "poweredOn"


class NoiseDoctorLifecycle(BootingDoctorLifecycle):
    """``doctor --noise``: booted and read as with ``--boot``, then restarted without an install, given the settle
    window and captured again; the run's restore reverts it. The two captures are the lab's own noise."""

    restarted_at: dt.datetime | None = None

    def _read(self) -> None:
        super()._read()
        self.restarted_at = dt.datetime.now(dt.UTC)
        self._reboot()
        if self.obs.unreachable is not None:
            raise LabError(f"the guest did not answer remoting after the restart ({self.obs.unreachable['error']})",
                           vm=self.vm.name, step="reboot")
        self._settle()
        with self.step("capture_post", limit="capture"):
            self.obs.post, self.obs.post_raw = self._capture(since=self.restarted_at)


def _step_checks(steps: list[Step]) -> list[Check]:
    out = []
    for step in steps:
        area, name, advice = STEP_CHECKS.get(step.name, ("lab", step.name, "see the detail"))
        if step.ok:
            if step.name == "power_state" and step.detail != "poweredOn":
                continue  # said by powered_off_checks, with what to do
            if step.name == "power_state":
                out.append(Check(area, name, "ok", step.detail))
            elif step.name in ("snapshot", "connect", "wait_ready"):
                out.append(Check(area, name, "ok", f"{step.duration:.2f}s"))
        else:
            out.append(Check(area, name, "fail", step.detail or "failed", advice))
    return out


def vm_checks(run: LabRun, name: str) -> list[Check]:
    """Every check of one VM, in the order a run meets them."""
    lifecycle = run.lifecycles[name]
    obs = lifecycle.obs
    checks: list[Check] = []
    if run.run_error is not None:
        checks.append(Check("hypervisor", "reachable and credentials", "fail", str(run.run_error),
                            "check the lab file's hypervisor block, its secrets and that the host answers"))
    elif run.components is not None:
        checks.append(Check("hypervisor", "reachable and credentials", "ok", run.lab.hypervisor.kind))
        for part, validated in run.components.cert_validation.items():
            if not validated:
                checks.append(Check(part if part != "secrets" else "hypervisor", f"{part} TLS", "warn",
                                    "certificate validation is off in the lab file",
                                    "turn it on with the lab's CA bundle (docs/lab-file.md) before trusting "
                                    "a verdict"))
    staged = staging_check(run.lab)
    if staged is not None:
        checks.append(staged)
    checks += _step_checks(obs.steps)
    own = getattr(run.components.hypervisor, "doctor_checks", None) if run.components is not None else None
    if own is not None and run.run_error is None:  # what only this hypervisor kind can say about the VM
        checks += [Check("hypervisor", *found) for found in own(lifecycle.vm, obs.snapshot)]
    checks += getattr(lifecycle, "checks", [])
    state = getattr(lifecycle, "power_state", None)
    if state is not None and state != "poweredOn":
        checks += powered_off_checks(state, lifecycle.vm.role)
    if obs.error is not None and not any(c.status == "fail" for c in checks):
        checks.append(Check("lab", "lease and start", "fail", str(obs.error),
                            "see the detail (a lease held by another run: 'patchgate leases --lab ...')"))
    if obs.restore_error is not None:
        checks.append(Check("hypervisor", "restore", "fail", str(obs.restore_error), STEP_CHECKS["restore"][2]))
    return checks


def diagnose(run: LabRun) -> dict[str, list[Check]]:
    """Run doctor's lifecycles to their end, restore every VM, and return each VM's checks."""
    run.start()
    try:
        run.wait_all()
    finally:
        run.finish()
    return {name: vm_checks(run, name) for name in run.lifecycles}


def print_report(lab_name: str, results: dict[str, list[Check]]) -> None:
    print(f"patchgate doctor: lab '{lab_name}'")
    for vm, checks in results.items():
        print(f"\n{vm}")
        for check in checks:
            print(f"  {check.status.upper():4}  {check.area:<10} {check.name:<28} {check.detail}")
            if check.advice and check.status != "ok":
                print(f"        -> {check.advice}")
    failed = sum(c.status == "fail" for checks in results.values() for c in checks)
    warned = sum(c.status == "warn" for checks in results.values() for c in checks)
    print(f"\n{failed} failed, {warned} warning(s): " + ("lab trouble, fix it before a validate" if failed
                                                          else "the lab is ready"))


def exit_code(results: dict[str, list[Check]]) -> int:
    return EXIT_INCONCLUSIVE if any(c.status == "fail" for checks in results.values() for c in checks) else EXIT_OK


def _run(lab: Lab, candidate: Candidate | None, catalogs: list[Path], vms: list[str], *,
         boot: bool = False, noise: bool = False) -> LabRun:
    lifecycle = NoiseDoctorLifecycle if noise else BootingDoctorLifecycle if boot else DoctorLifecycle
    return LabRun(lab, candidate, selection=RunSelection(vms=vms), kind_catalogs=catalogs,  # type: ignore[arg-type]
                  kind_inputs_checked=True, lifecycle_class=lifecycle)
