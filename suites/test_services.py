"""Services: an update must not stop, reconfigure or crash the services that keep a server running.

Compared per service Name: StartMode, DelayedAutoStart, StartName, PathName, and State for auto-start services
(manual and trigger-start services such as wuauserv and sppsvc are legitimately stopped; delayed-start services
were given the settle window to start). Per-user instances (CDPUserSvc_1a2b3) are compared as their template,
since their suffix changes at every logon. SCM start timeouts (7000, 7009, 7011) of a service that runs at the
post capture are the slow first boot after servicing, shown as noise (docs/invariants.md). Service Control Manager failure
events (7000, 7001, 7009, 7011, 7022, 7023, 7024, 7026, 7031, 7032, 7034) since the install fail with the service
named; services the update installed (new in the diff or SCM 7045) are called out. Services the lab expects to
change (policy.allow.services) and to appear (policy.allow.new_services) pass, and are listed with the check.
"""

from __future__ import annotations

from patchgate_pytest.invariants import applies_to, invariant
from patchgate_pytest.messages import allowed, noise_seen, violation
from patchgate.model.diff import diff_keyed
from patchgate.model.stable import collapse_per_user, per_user_template

pytestmark = applies_to("hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host")

CONFIG_FIELDS = ("start_mode", "delayed_auto_start", "start_name", "path_name")
SERVICE_INSTALLED = 7045
SCM = "Service Control Manager"
START_TIMEOUTS = frozenset({7000, 7009, 7011})  # a slow start, not a crash: noise when the service runs afterwards


def _allowed(policy, name: str) -> bool:
    return name.lower() in {s.lower() for s in policy.allow.services}


def _service_name(services, event_name: str | None) -> str:
    """SCM events carry the display name (Properties[0]); map it back to the service Name where known."""
    if not event_name:
        return "?"
    match = next((s.name for s in services.values() if event_name in (s.name, s.display_name)), None)
    return match or event_name


@invariant("services.auto_start_running", severity="blocker")
def test_auto_start_services_still_running(obs, policy):
    before = collapse_per_user(obs.baseline.area("services").services)
    after = collapse_per_user(obs.post.area("services").services)
    rows, let_through, triggered = [], [], []
    for name, old in before.items():
        if not (old.automatic and old.running):
            continue
        new = after.get(name)
        if (old.trigger_start or (new is not None and new.trigger_start)) and new is not None:
            if not new.running:
                triggered.append((name, "state", old.state, new.state))
            continue
        if new is None or not new.running:
            row = (name, "state", old.state, new.state if new else "(removed)")
            (let_through if _allowed(policy, name) else rows).append(row)
    allowed(obs, "auto-start services policy.allow.services expects to change", let_through)
    noise_seen(obs, "trigger-start services that stopped by themselves", triggered)
    assert not rows, violation(obs, "auto-start services that ran before the update are not running", rows)


@invariant("services.configuration", severity="critical")
def test_service_configuration_unchanged(obs, policy):
    before = collapse_per_user(obs.baseline.area("services").services)
    after = collapse_per_user(obs.post.area("services").services)
    changes = diff_keyed(before, after, CONFIG_FIELDS).without(lambda name, old, new: old is None)  # new: below
    allowed(obs, "service configuration policy.allow.services expects to change",
            changes.only(lambda name, *_: _allowed(policy, name)))
    changes = changes.without(lambda name, *_: _allowed(policy, name))
    assert not changes, violation(obs, "service configuration changed by the update", changes)


@invariant("services.scm_failures", severity="critical")
def test_no_service_control_manager_failures(obs, policy):
    before, after = obs.baseline.area("services").services, obs.post.area("services").services
    rows, let_through, slow = [], [], []
    for e in obs.post.area("events").service_failures:
        name = _service_name(after, e.service)
        old = before.get(name)
        when = f" at {e.time_created:%H:%M:%S}" if e.time_created else ""
        row = (name, old.state if old else "-", f"SCM {e.id}{when}: {(e.message or '').strip()[:70]}")
        now = after.get(name)
        if e.id in START_TIMEOUTS and now is not None and now.running:
            slow.append(row)
        else:
            (let_through if _allowed(policy, name) else rows).append(row)
    headers = ("service", "before (state)", "after (event since the install)")
    allowed(obs, "SCM failure events of services policy.allow.services expects", let_through, headers=headers)
    noise_seen(obs, "SCM start timeouts of services that run at the post capture (slow first boot after "
               "servicing)", slow, headers=headers)
    assert not rows, violation(obs, "Service Control Manager reported service failures since the install", rows,
                               headers=headers)


@invariant("services.new_services", severity="normal")
def test_no_unexpected_new_services(obs, policy):
    raw_after = obs.post.area("services").services
    before = collapse_per_user(obs.baseline.area("services").services)
    after = collapse_per_user(raw_after)
    expected = {s.lower() for s in policy.allow.new_services}
    installed = {_key(raw_after, _service_name(raw_after, e.service))
                 for e in obs.post.area("events").with_ids([SERVICE_INSTALLED], SCM)}
    new = sorted({name for name in after if name not in before} | {n for n in installed if n not in before})
    rows = [(name, "(absent)", *_installed(after.get(name), name in installed)) for name in new]
    headers = ("service", "before", "after", "PathName")
    allowed(obs, "services policy.allow.new_services expects the update to install",
            [r for r in rows if r[0].lower() in expected], headers=headers)
    rows = [r for r in rows if r[0].lower() not in expected]
    assert not rows, violation(obs, "the update installed services the lab policy does not expect "
                               "(allow them under policy.allow.new_services)", rows, headers=headers)


def _key(services, name: str) -> str:
    """The name a per-user instance is compared under (its template's)."""
    template = per_user_template(name, services)
    return f"{template}_*" if template else name


def _installed(svc, logged: bool) -> tuple[str, str]:
    event = "SCM 7045; " if logged else ""
    if svc is None:
        return f"{event}not in the service list", "-"
    return f"{event}{svc.start_mode} as {svc.start_name or '?'}", svc.path_name or "-"
