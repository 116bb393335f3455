"""WSUS: a WSUS server must still serve and synchronize after the update, and show no sign of CVE-2025-59287.

Sources: Get-WsusServer and ISynchronizationInfo (Microsoft Learn); WsusPool and the child-process IOC (Elastic
detection rule "Windows Server Update Service Spawning Suspicious Processes"); Application event 7053 of the provider
"Windows Server Update Services" whose data holds ALL four deserialization markers (SigmaHQ
rules-emerging-threats/2025/Exploits/CVE-2025-59287/win_wsus_exploit_cve_2025_59287.yml): 7053 alone is a generic
console error. ErrorText is never asserted on: after the CVE fix
WSUS stopped showing synchronization error details. The WID service name MSSQL$MICROSOFT##WID is [U].
"""

from __future__ import annotations

import datetime as dt

from patchgate_pytest.invariants import applies_to, invariant
from patchgate_pytest.messages import before_after, violation
from patchgate.errors import LabError, ProbeError
from patchgate.model.posture import SUSPICIOUS_CHILDREN, WSUS_EXPLOIT_EVENT_ID

pytestmark = applies_to("wsus-server")

WSUS_SERVICES = ("WsusService", "W3SVC", "WAS", "MSSQL$MICROSOFT##WID")
WSUS_PORTS = (8530, 8531)
WSUS_POOL = "WsusPool"
EXPLOIT_PROVIDER = "Windows Server Update Services"
# SigmaHQ win_wsus_exploit_cve_2025_59287 (Data|contains|all), from ysoserial.net's ObjectDataProvider gadget
EXPLOIT_MARKERS = ("System.InvalidCastException", "System.Windows.Data.ObjectDataProvider",
                   "Unable to cast object of type", "System.Windows.Media.Brush")
CLOCK_SLACK = dt.timedelta(seconds=1)  # sync times against the install's end, both on the guest's clock


@invariant("wsus.role", severity="blocker")
def test_role_present(obs):
    before, after = obs.baseline.area("wsus"), obs.post.area("wsus")
    assert after.role_installed, before_after(obs, "the WSUS role (UpdateServices) is gone after the update",
                                              [("UpdateServices installed", before.role_installed,
                                                after.role_installed)])


@invariant("wsus.services", severity="blocker")
def test_wsus_services_running(obs):
    before, after = obs.baseline.area("services"), obs.post.area("services")
    rows = []
    for name in WSUS_SERVICES:
        old, new = before.get(name), after.get(name)
        if old is not None and old.running and (new is None or not new.running):
            rows.append((name, old.state, new.state if new else "absent"))
    assert not rows, before_after(obs, "WSUS services that ran before the update are not running", rows)


@invariant("wsus.app_pool", severity="blocker")
def test_wsus_pool_started(obs):
    before, after = obs.baseline.area("wsus"), obs.post.area("wsus")
    for when, state in (("baseline", before), ("post", after)):
        if state.app_pool_error:  # a failed read says nothing about the pool: inconclusive, with the error
            raise ProbeError(f"WsusPool state could not be read at {when}: {state.app_pool_error}",
                             vm=obs.vm.name, step=f"capture_{when}")
    assert after.app_pool_state == "Started", before_after(
        obs, "the IIS application pool WsusPool is not started", [("WsusPool", before.app_pool_state,
                                                                   after.app_pool_state)])


@invariant("wsus.ports", severity="critical")
def test_wsus_ports_listening_as_before(obs):
    before, after = obs.baseline.area("ports").keyed(), obs.post.area("ports").keyed()
    rows = []
    for port in WSUS_PORTS:
        old, new = before.get(("TCP", port)), after.get(("TCP", port))
        if old is not None and (new is None or new.local_addresses != old.local_addresses):
            rows.append((f"TCP {port}", _listening(old), _listening(new)))
    assert not rows, before_after(obs, "WSUS ports no longer listen as they did before the update", rows)


def _listening(binding) -> str:
    if binding is None:
        return "not listening"
    return f"listening on {', '.join(binding.local_addresses)} ({', '.join(binding.process_names)})"


def _sync_startable_at_baseline(obs) -> None:
    """A synchronization that could not work before the update (WSUS API unavailable, e.g. missing on Core, or no
    successful sync: no upstream from the lab) says nothing about the update: that is lab trouble, not a regression."""
    base = obs.baseline.area("wsus")
    if not base.api_available:
        raise LabError(f"the WSUS API was not available before the update ({base.api_error or 'Get-WsusServer failed'})"
                       ": a synchronization cannot be judged; fix the snapshot", vm=obs.vm.name, step="wsus_sync")
    if base.last_sync is None or base.last_sync.result != "Succeeded":
        result = base.last_sync.result if base.last_sync else "no synchronization"
        raise LabError(f"the last WSUS synchronization before the update was {result}: the upstream is not usable "
                       "from the lab, so a synchronization after the update cannot be judged", vm=obs.vm.name,
                       step="wsus_sync")


@invariant("wsus.sync", severity="blocker")
def test_sync_succeeds_after_update(obs):
    _sync_startable_at_baseline(obs)
    last = obs.baseline.area("wsus").last_sync
    sync = obs.wsus_sync or {}
    finished = obs.install.finished_at if obs.install else None
    # sync times are the guest's clock: the install's end is moved onto it by the offset measured at the captures
    skew = _guest_skew(obs)
    if finished is not None:
        finished = finished + skew
    result = sync.get("Result")
    start, end = _parse(sync.get("StartTime")), _parse(sync.get("EndTime"))
    after_install = (f"after {finished:%Y-%m-%d %H:%M:%S}Z on the guest's clock (skew {skew.total_seconds():+.1f}s)"
                     if finished else "after the install")
    rows = [("Result", last.result if last else "-", result or "(no synchronization)", "Succeeded"),
            ("StartTime", last.start_time if last else "-", start or "-", after_install),
            ("EndTime", last.end_time if last else "-", end or "-", after_install)]
    # ErrorText is not asserted on: after the CVE-2025-59287 fix WSUS stopped showing error details.
    ok = (result == "Succeeded" and finished is not None and start is not None and end is not None
          and start >= finished - CLOCK_SLACK and end > finished - CLOCK_SLACK)
    assert ok, violation(obs, "no WSUS synchronization started after the update succeeded", rows,
                         headers=("field", "before (last sync)", "after (sync after the install)", "required"))


def _guest_skew(obs) -> dt.timedelta:
    """The guest's clock minus the controller's, as measured at the post capture (else the baseline's)."""
    offsets = getattr(obs, "clock_offsets", {}) or {}
    seconds = next((offsets[k] for k in ("post", "baseline") if offsets.get(k) is not None), 0.0)
    return dt.timedelta(seconds=seconds)


def _wsus_hosts(processes) -> dict[int, str]:
    """wsusservice.exe and the w3wp.exe that serves WsusPool (a w3wp without a command line counts too)."""
    hosts = {}
    for p in processes.processes:
        name = p.name.lower()
        if name == "wsusservice.exe" or (name == "w3wp.exe" and (
                not p.command_line or WSUS_POOL.lower() in p.command_line.lower())):
            hosts[p.process_id] = f"{p.name} (pid {p.process_id})"
    return hosts


@invariant("wsus.exploitation_indicators", severity="blocker")
def test_no_cve_2025_59287_indicators(obs):
    events = obs.post.area("events")
    processes = obs.post.area("processes")
    hits = [(f"event {e.id} ({e.provider_name})", "(none)",
             (f"{e.time_created:%H:%M:%S} " if e.time_created else "") + _excerpt(e.message or ""))
            for e in events.with_ids([WSUS_EXPLOIT_EVENT_ID]) if _sigma_cve_2025_59287(e)]
    hosts = _wsus_hosts(processes)
    hits += [(f"process {p.name} (pid {p.process_id})", "(none)",
              f"child of {hosts[p.parent_process_id]}: {(p.command_line or '')[:60]}") for p in processes.processes
             if p.parent_process_id in hosts and p.name.lower() in SUSPICIOUS_CHILDREN]
    assert not hits, violation(obs, "indicators of CVE-2025-59287 exploitation found", hits,
                               headers=("indicator", "before", "after"),
                               hint="Isolate the server and follow CISA's guidance before anything else.")


def _sigma_cve_2025_59287(event) -> bool:
    """The Sigma rule: provider WSUS, id 7053 and every marker in the event's text."""
    text = event.message or ""
    return event.provider_name == EXPLOIT_PROVIDER and all(marker in text for marker in EXPLOIT_MARKERS)


def _excerpt(message: str) -> str:
    """The part of an event message around the exploitation marker (the headline alone says nothing)."""
    at = min((message.find(m) for m in EXPLOIT_MARKERS if m in message), default=0)
    return message[max(at - 10, 0):at + 60].strip()


def _parse(value: object) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))  # 3.11 reads a trailing Z
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
