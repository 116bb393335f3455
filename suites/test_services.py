"""Services: an update must not stop, reconfigure or crash the services that keep a server running.

Compared per service Name: StartMode, DelayedAutoStart, StartName, PathName, and State for auto-start services
(manual and trigger-start services such as wuauserv are legitimately stopped). Service Control Manager failure
events since the install fail with the service named; services the update installed (7045) are called out.
"""

from __future__ import annotations

from fixtures.invariants import applies_to, invariant
from fixtures.messages import violation
from patchgate.diff import diff_keyed

pytestmark = applies_to("hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host")

CONFIG_FIELDS = ("start_mode", "delayed_auto_start", "start_name", "path_name")


def _allowed(policy, name: str) -> bool:
    return name.lower() in {s.lower() for s in policy.allow.services}


@invariant("services.auto_start_running", severity="blocker")
def test_auto_start_services_still_running(obs, policy):
    before, after = obs.baseline.area("services").services, obs.post.area("services").services
    rows = []
    for name, old in before.items():
        if not (old.automatic and old.running) or _allowed(policy, name):
            continue
        new = after.get(name)
        if new is None or not new.running:
            rows.append((name, "state", old.state, new.state if new else "(removed)"))
    assert not rows, violation(obs, "auto-start services that ran before the update are not running", rows)


@invariant("services.configuration", severity="critical")
def test_service_configuration_unchanged(obs, policy):
    before, after = obs.baseline.area("services").services, obs.post.area("services").services
    changes = diff_keyed(before, after, CONFIG_FIELDS).without(lambda name, *_: _allowed(policy, name))
    changes = changes.without(lambda name, old, new: old is None)  # new services: services.new_services
    assert not changes, violation(obs, "service configuration changed by the update", changes)


@invariant("services.scm_failures", severity="critical")
def test_no_service_control_manager_failures(obs, policy):
    failures = [e for e in obs.post.area("events").service_failures if not _allowed(policy, e.service or "")]
    rows = [(e.service or "?", e.id, e.time_created, (e.message or "")[:70]) for e in failures]
    assert not rows, violation(obs, "Service Control Manager reported service failures after the install", rows,
                               headers=("service", "event", "time", "message"))


@invariant("services.new_services", severity="normal")
def test_no_unexpected_new_services(obs, policy):
    before, after = obs.baseline.area("services").services, obs.post.area("services").services
    allowed = {s.lower() for s in policy.allow.new_services}
    new = {name: svc for name, svc in after.items() if name not in before and name.lower() not in allowed}
    installed = [e.service for e in obs.post.area("events").with_ids([7045], "Service Control Manager")
                 if e.service and e.service.lower() not in allowed and e.service not in new]
    rows = [(name, svc.start_mode, svc.start_name, svc.path_name) for name, svc in new.items()]
    rows += [(name, "?", "?", "(event 7045)") for name in installed]
    assert not rows, violation(obs, "the update installed services the lab policy does not expect "
                               "(allow them under policy.allow.new_services)", rows,
                               headers=("service", "StartMode", "StartName", "PathName"))
