"""WSUS: a WSUS server must still serve and synchronize after the update, and show no sign of CVE-2025-59287.

Sources: Get-WsusServer and ISynchronizationInfo (Microsoft Learn); WsusPool and the child-process IOC (Elastic
detection rule); event 7053 with InvalidCastException (SigmaHQ win_wsus_exploit_cve_2025_59287). ErrorText is
never asserted on: after the CVE fix WSUS stopped showing synchronization error details.
"""

from __future__ import annotations

import datetime as dt

from fixtures.invariants import applies_to, invariant
from fixtures.messages import before_after, violation
from patchgate.posture import WSUS_EXPLOIT_EVENT_ID

pytestmark = applies_to("wsus-server")

WSUS_SERVICES = ("WsusService", "W3SVC", "WAS", "MSSQL$MICROSOFT##WID")
WSUS_PORTS = (8530, 8531)


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
    assert not rows, before_after(obs, "WSUS services stopped after the update", rows)


@invariant("wsus.app_pool", severity="blocker")
def test_wsus_pool_started(obs):
    before, after = obs.baseline.area("wsus"), obs.post.area("wsus")
    assert after.app_pool_state == "Started", before_after(
        obs, "the IIS application pool WsusPool is not started", [("WsusPool", before.app_pool_state,
                                                                   after.app_pool_state)])


@invariant("wsus.ports", severity="critical")
def test_wsus_ports_listening_as_before(obs):
    before, after = obs.baseline.area("ports"), obs.post.area("ports")
    rows = [(f"TCP {port}", "listening", "not listening") for port in WSUS_PORTS
            if before.listening(port) and not after.listening(port)]
    assert not rows, before_after(obs, "WSUS ports that listened before the update no longer listen", rows)


@invariant("wsus.sync", severity="blocker")
def test_sync_succeeds_after_update(obs):
    sync = obs.wsus_sync or {}
    finished = obs.install.finished_at if obs.install else None
    result = sync.get("Result")
    end = _parse(sync.get("EndTime"))
    start = _parse(sync.get("StartTime"))
    rows = [("Result", "Succeeded", result), ("StartTime", f"after {finished:%H:%M:%S}" if finished else "", start),
            ("EndTime", "after the install", end)]
    ok = result == "Succeeded" and end is not None and finished is not None and end > finished and (
        start is None or start >= finished - dt.timedelta(seconds=1))
    assert ok, violation(obs, "WSUS synchronization started after the update did not succeed", rows,
                         headers=("field", "expected", "actual"))


@invariant("wsus.exploitation_indicators", severity="blocker")
def test_no_cve_2025_59287_indicators(obs):
    events = obs.post.area("events")
    processes = obs.post.area("processes")
    hits = [(f"event {e.id}", e.provider_name, (e.message or "")[:80]) for e in events.with_ids([WSUS_EXPLOIT_EVENT_ID])
            if "InvalidCastException" in (e.message or "") or "ObjectDataProvider" in (e.message or "")]
    parents = {p.process_id: p.name for p in processes.processes}
    hits += [(f"process {p.name} (pid {p.process_id})", f"child of {parents.get(p.parent_process_id, '?')}",
              (p.command_line or "")[:80]) for p in processes.suspicious_wsus_children]
    assert not hits, violation(obs, "indicators of CVE-2025-59287 exploitation found", hits,
                               headers=("indicator", "where", "detail"),
                               hint="Isolate the server and follow CISA's guidance before anything else.")


def _parse(value: object) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
