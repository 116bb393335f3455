"""Judging what a VM answered: one ``Check`` per question, ok / warn / fail, each failure with what to do.

Pure functions over the preflight facts and a posture capture, so the same judgement serves ``patchgate doctor``,
the preflight of every run and the transcript replays. Thresholds and their sources: docs/doctor.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from patchgate.doctor.facts import GuestFacts
from patchgate.model.posture import Posture

Status = Literal["ok", "warn", "fail"]

# Kerberos' default tolerance for clock differences is 5 minutes; the events probe's since-filter compares the
# VM's clock with the controller's too. https://learn.microsoft.com/previous-versions/windows/it-pro/windows-10/security/threat-protection/security-policy-settings/maximum-tolerance-for-computer-clock-synchronization
CLOCK_SKEW_FAIL = 300.0
CLOCK_SKEW_WARN = 30.0
MIN_SHELL_MEMORY_MB = 1024  # MS-WSMV schema default; what DISM needs inside a remote shell is [U]
MIN_ENVELOPE_KB = 500  # the documented default of recent Windows [U]; smaller envelopes make staging slower
SPACE_FACTOR = 3  # a package is copied, expanded and installed: three times its size on the system drive
MIN_FREE_BYTES = 10 * 2**30  # servicing needs room beyond the package (component store, logs) [U] how much
WS2025_BUILD = "26100"
SERVER_EDITIONS = ("ServerStandard", "ServerDatacenter", "ServerTurbine", "ServerStandardCore",
                   "ServerDatacenterCore", "ServerTurbineCore")  # [U] EditionID of Azure Edition Core


if TYPE_CHECKING:
    from patchgate.config.lab import Lab


@dataclass(frozen=True)
class Check:
    area: str  # hypervisor | remoting | staging | vm | assumption
    name: str
    status: Status
    detail: str
    advice: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _check(area: str, name: str, failed: bool, detail: str, advice: str, *, warn_only: bool = False) -> Check:
    status: Status = "ok" if not failed else ("warn" if warn_only else "fail")
    return Check(area, name, status, detail, advice if failed else "")


# ------------------------------------------------------------------ the cheap checks (preflight of every run)

def language_check(facts: GuestFacts) -> Check:
    mode = facts.language_mode or "unknown"
    return _check("remoting", "language mode", mode != "FullLanguage", f"endpoint runs {mode}",
                  "the probes need FullLanguage: use the default Microsoft.PowerShell endpoint, not a constrained "
                  "or JEA one, and check AppLocker/WDAC script enforcement for the lab account")


def space_check(facts: GuestFacts, candidate_bytes: int | None) -> Check:
    drive = facts.system_drive or "system drive"
    if facts.free_bytes is None:
        return Check("vm", "free space", "warn", f"{drive}: free space unknown (Win32_LogicalDisk unreadable)",
                     "check that the lab account can read Win32_LogicalDisk")
    free_gb = facts.free_bytes / 2**30
    needed = max(MIN_FREE_BYTES, (candidate_bytes or 0) * SPACE_FACTOR)
    sized = f"candidate x{SPACE_FACTOR}" if candidate_bytes else "no candidate given to size"
    return _check("vm", "free space", facts.free_bytes < needed,
                  f"{drive} {free_gb:.1f} GiB free, needs {needed / 2**30:.1f} GiB ({sized}, at least "
                  f"{MIN_FREE_BYTES / 2**30:.0f} GiB)",
                  f"free at least {needed / 2**30:.1f} GiB on {drive} in the snapshot (component store cleanup: "
                  "Dism /Online /Cleanup-Image /StartComponentCleanup), then take the snapshot again")


def reboot_check(facts: GuestFacts) -> Check:
    signals = [name for name, on in (("CBS RebootPending", facts.cbs_reboot_pending),
                                     ("WU RebootRequired", facts.wu_reboot_required)) if on]
    return _check("vm", "pending reboot", bool(signals),
                  f"reboot pending ({', '.join(signals)})" if signals else "no reboot pending",
                  "the snapshot was taken with a reboot pending: restart the VM, let it settle, take the snapshot "
                  "again (an install on top would mix two updates' effects)")


def packages_check(facts: GuestFacts) -> Check:
    if facts.pending_packages is None:
        return Check("vm", "pending packages", "warn", "Get-WindowsPackage -Online could not be read",
                     "run Get-WindowsPackage -Online on the VM as the lab account; it needs an administrator token")
    pending = facts.pending_packages
    return _check("vm", "pending packages", bool(pending),
                  f"{len(pending)} package(s) pending: {', '.join(pending[:3])}" if pending else "none pending",
                  "finish the pending servicing (restart), then take the snapshot again")


def clock_check(facts: GuestFacts, controller_now: dt.datetime) -> Check:
    if facts.utc_now is None:
        return Check("vm", "clock", "fail", "the VM did not report its time",
                     "check the preflight output (docs/doctor.md#facts)")
    skew = abs((facts.utc_now - controller_now).total_seconds())
    detail = f"VM clock {skew:.0f}s from the controller's"
    if skew >= CLOCK_SKEW_FAIL:
        return Check("vm", "clock", "fail", detail, "sync the VM's time (w32tm /resync) before the snapshot, or "
                     "fix the controller's NTP: Kerberos and the event time window rely on it")
    if skew >= CLOCK_SKEW_WARN:
        return Check("vm", "clock", "warn", detail, "sync the VM's time (w32tm /resync)")
    return Check("vm", "clock", "ok", detail)


def preflight_checks(facts: GuestFacts, *, controller_now: dt.datetime,
                     candidate_bytes: int | None) -> list[Check]:
    """The checks every validate runs before its install; a ``fail`` makes the VM lab trouble."""
    return [language_check(facts), space_check(facts, candidate_bytes), reboot_check(facts),
            packages_check(facts), clock_check(facts, controller_now)]


# ------------------------------------------------------------------ the rest of doctor's checks on the facts

def account_checks(facts: GuestFacts) -> list[Check]:
    prefix = (facts.user_name or "").split("\\", 1)[0].upper()
    local = bool(prefix) and prefix == (facts.computer_name or "").upper()  # COMPUTER\\user: a local account
    token = _check("remoting", "admin token", facts.is_administrator is not True,
                   f"{facts.user_name or 'the lab account'} "
                   f"{'has' if facts.is_administrator else 'has NO'} administrator token",
                   "use an account in the VM's Administrators group; for a local account set "
                   "HKLM\\...\\Policies\\System LocalAccountTokenFilterPolicy=1, or the remote token is filtered")
    checks = [token]
    if local and facts.local_account_token_filter_policy != 1:
        checks.append(Check("remoting", "LocalAccountTokenFilterPolicy",
                            "warn" if facts.is_administrator else "fail",
                            f"local account, LocalAccountTokenFilterPolicy is "
                            f"{facts.local_account_token_filter_policy}",
                            "a local account needs LocalAccountTokenFilterPolicy=1 for an unfiltered token over "
                            "WinRM (the built-in Administrator is exempt)"))
    memory = facts.max_memory_per_shell_mb
    checks.append(_check("remoting", "MaxMemoryPerShellMB", memory is None or (0 < memory < MIN_SHELL_MEMORY_MB),
                         f"MaxMemoryPerShellMB {memory if memory is not None else 'unreadable'}",
                         f"Set-Item WSMan:\\localhost\\Shell\\MaxMemoryPerShellMB {MIN_SHELL_MEMORY_MB} (or more): "
                         "DISM runs inside the remote shell", warn_only=True))
    envelope = facts.max_envelope_size_kb
    checks.append(_check("remoting", "MaxEnvelopeSizekb", envelope is None or envelope < MIN_ENVELOPE_KB,
                         f"MaxEnvelopeSizekb {envelope if envelope is not None else 'unreadable'}",
                         f"Set-Item WSMan:\\localhost\\MaxEnvelopeSizekb {MIN_ENVELOPE_KB}: staging copies the "
                         "package in envelope-sized chunks", warn_only=True))
    return checks


def identity_checks(facts: GuestFacts) -> list[Check]:
    edition, kind, build = facts.edition_id, facts.installation_type, facts.current_build
    return [
        _check("vm", "edition", edition not in SERVER_EDITIONS or build != WS2025_BUILD,
               f"EditionID {edition}, InstallationType {kind}, build {build}",
               f"patchgate gates Windows Server 2025 (build {WS2025_BUILD}) Standard, Datacenter or Azure "
               "Edition: check the lab file's image/snapshot", warn_only=True),
        _check("assumption", "BootId", facts.boot_id is None,
               f"BootId {facts.boot_id if facts.boot_id is not None else 'absent'} [U]",
               "BootId is not where patchgate looks: report it (docs/first-day.md); the reboot checks then rely "
               "on LastBootUpTime only", warn_only=True),
    ]


def webadmin_check(facts: GuestFacts, role: str) -> Check:
    ok = facts.web_administration == "ok"
    needed = role == "wsus-server"  # only the WSUS probe reads IIS
    return _check("assumption", "WebAdministration", not ok,
                  "WebAdministration readable in a remote session" if ok
                  else f"WebAdministration: {facts.web_administration}",
                  "the WSUS probe reads the WsusPool through WebAdministration: install the IIS management "
                  "scripts (Web-Scripting-Tools) or report it (docs/first-day.md)", warn_only=not needed)


# ------------------------------------------------------------------ the [U] assumptions, measured on a capture

def assumption_checks(posture: Posture, role: str) -> list[Check]:
    """What the suites would conclude from this VM's capture, said before a run concludes it."""
    checks: list[Check] = []
    hp = posture.area("hotpatch")
    if hp is not None:
        signals = (f"package {'present' if hp.package_present else 'absent'}, HotPatchTableSize "
                   f"{hp.hotpatch_table_size}, VBS status {hp.vbs_status}")
        if role == "hotpatch-member":
            checks.append(_check("assumption", "hotpatch enrollment", not hp.enrolled,
                                 f"{signals}: hotpatch suite would treat this VM as "
                                 f"{'enrolled' if hp.enrolled else 'NOT enrolled'}",
                                 "the role says hotpatch-member but the local signals the suite relies on [U] are "
                                 "missing: check the portal/Arc that the VM is enrolled; if it is, report these "
                                 "values (docs/first-day.md), the suite's reading of enrollment is wrong"))
        else:
            checks.append(Check("assumption", "hotpatch enrollment", "ok",
                                f"{signals}: {'enrolled' if hp.enrolled else 'not enrolled'} (role {role})"))
    updates = posture.area("updates")
    if updates is not None:
        kbs = ", ".join(f"{kb} ({info.description})" for kb, info in sorted(updates.hotfixes.items()))
        checks.append(Check("assumption", "Get-HotFix", "ok" if updates.hotfixes else "warn",
                            f"build {updates.build}; {kbs or 'no KB listed'} [U]",
                            "" if updates.hotfixes else "Get-HotFix lists nothing: the KB checks cannot see the "
                            "candidate; report it (docs/first-day.md)"))
    if role == "wsus-server":
        wsus = posture.area("wsus")
        reachable = wsus is not None and wsus.api_available and bool(wsus.mu_url)
        detail = (f"WSUS API answered, upstream {wsus.mu_url}" if reachable and wsus is not None
                  else f"WSUS API: {(wsus.api_error if wsus else None) or posture.errors.get('wsus') or 'no upstream'}")
        checks.append(_check("assumption", "WSUS API", not reachable, detail,
                             "the WSUS suite needs Get-WsusServer and an upstream server: check the WSUS role, "
                             "the WsusPool and the lab account's WSUS Administrators membership"))
    for area, error in sorted(posture.errors.items()):
        checks.append(Check("assumption", f"probe {area}", "fail", error[:200],
                            f"the {area} probe failed on this VM: run it by hand (docs/probes.md) and report it"))
    return checks


def staging_check(lab: Lab) -> Check | None:
    """Can the lab's VMs get the candidate the way the lab file says? None when nothing needs saying.

    The content server listens on ``staging.address``; 127.0.0.1 serves only guests on this machine (the twin), so
    real VMs would fail every download: a warning before a validate finds out VM by VM."""
    staging = lab.staging
    if staging.source != "harness" or lab.simulated:
        return None
    try:
        loopback = ipaddress.ip_address(staging.address).is_loopback
    except ValueError:
        loopback = staging.address.lower() == "localhost"
    if not loopback:
        return None
    return Check("staging", "package source", "warn", f"the content server listens on {staging.address}, which "
                 "the lab's VMs cannot reach (staging.source: harness)", "set staging.address to this machine's "
                 "lab-facing address (docs/lab-file.md, staging), or staging.source: share or push")
