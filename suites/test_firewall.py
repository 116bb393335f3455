"""Firewall: the update must not weaken the firewall posture (ActiveStore, the effective policy).

Profiles are compared setting by setting (Enabled, default actions, AllowInboundRules, AllowLocalFirewallRules,
logging) together with the network category of each interface, which decides the profile in force. Rules are keyed
by Name (DisplayName is localized) and compared on every condition and on their Group; a new inbound Allow rule is
exposure, called out when RemoteAddress is Any. Listening ports are compared with their owning processes: fixed
ports by number, the boot-assigned listeners of the dynamic range (RPC, 49664+) by owner and count; dynamic-range
UDP endpoints are client sockets and are left out (docs/invariants.md). Built-in rule groups an LCU may
legitimately change are allowlisted per lab (policy.allow.firewall_rule_groups, judged by the group a rule had
before the update) and listed with the passing check.
"""

from __future__ import annotations

from patchgate_pytest.invariants import applies_to, invariant
from patchgate_pytest.messages import allowed, before_after, noise_seen, violation
from patchgate.model.diff import diff_keyed
from patchgate.model.stable import DYNAMIC_DIFF_FIELDS, stable_listeners
from patchgate.model.posture import PORT_DIFF_FIELDS, PROFILE_DIFF_FIELDS, RULE_DIFF_FIELDS

pytestmark = applies_to("hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host")

RULE_FIELDS = (*RULE_DIFF_FIELDS, "remote_port", "local_address")
RULE_SUMMARY = ("enabled", "direction", "action", "protocol", "local_port", "remote_address")
FIREWALL_SERVICES = ("mpssvc", "BFE")


def _rule_allowed(policy, name, before, after) -> bool:
    """A group allowlist judges a rule by the group it had BEFORE the update (a new rule: its group after): an
    update must not escape the firewall check by moving a rule into an allowlisted group."""
    rule = before or after
    return name in policy.allow.firewall_rules or (rule is not None and rule.group in
                                                   policy.allow.firewall_rule_groups)


@invariant("firewall.profiles", severity="blocker")
def test_profiles_unchanged(obs):
    before, after = obs.baseline.area("firewall"), obs.post.area("firewall")
    changes = diff_keyed(before.profiles, after.profiles, PROFILE_DIFF_FIELDS)
    categories = diff_keyed({c.interface_alias: c for c in before.connection_profiles},
                            {c.interface_alias: c for c in after.connection_profiles}, ("network_category",))
    rows = changes.rows() + categories.rows()
    assert not rows, violation(obs, "firewall profile settings or network categories changed", rows,
                               headers=("profile / interface", "setting", "before", "after"))


@invariant("firewall.rules", severity="blocker")
def test_no_rule_removed_disabled_or_changed(obs, policy):
    before, after = obs.baseline.area("firewall").rules, obs.post.area("firewall").rules
    changes = diff_keyed(before, after, RULE_FIELDS)
    changes = changes.without(lambda name, old, new: old is None)  # additions: firewall.exposure
    allowed(obs, "rule changes policy.allow.firewall_rule_groups / firewall_rules expects",
            changes.only(lambda name, old, new: _rule_allowed(policy, name, old, new)).rows(summary=RULE_SUMMARY),
            headers=("rule", "field", "before", "after"))
    changes = changes.without(lambda name, old, new: _rule_allowed(policy, name, old, new))
    assert not changes, violation(obs, "firewall rules removed, disabled or changed by the update",
                                  changes.rows(summary=RULE_SUMMARY), headers=("rule", "field", "before", "after"))


@invariant("firewall.exposure", severity="blocker")
def test_no_new_inbound_allow_rule(obs, policy):
    before, after = obs.baseline.area("firewall").rules, obs.post.area("firewall").rules
    new = [r for name, r in after.items()
           if name not in before and r.enabled and r.direction == "Inbound" and r.action == "Allow"]
    rows = [(r.name, "(absent)", _describe(r), "REMOTE ADDRESS ANY" if r.inbound_allow_from_any else "")
            for r in new]
    headers = ("rule", "before", "after", "note")
    allowed(obs, "new inbound Allow rules the lab policy expects",
            [row for row, r in zip(rows, new) if _rule_allowed(policy, r.name, None, r)], headers=headers)
    rows = [row for row, r in zip(rows, new) if not _rule_allowed(policy, r.name, None, r)]
    assert not rows, violation(obs, "the update added inbound Allow rules", rows, headers=headers)


def _describe(rule) -> str:
    """'Inbound Allow TCP 4444 from Any (svchost.exe)': what a new rule lets in, in one cell."""
    ports = ",".join(rule.local_port) or "any port"
    remote = ",".join(rule.remote_address) or "Any"
    via = f" ({rule.program or rule.service})" if rule.program or rule.service else ""
    return f"Inbound Allow {rule.protocol or 'Any'} {ports} from {remote}{via}"


@invariant("firewall.listening_ports", severity="critical")
def test_listening_ports_unchanged(obs, policy):
    before, skipped_before = stable_listeners(obs.baseline.area("ports").listeners)
    after, skipped_after = stable_listeners(obs.post.area("ports").listeners)
    changes = diff_keyed(before, after, PORT_DIFF_FIELDS + DYNAMIC_DIFF_FIELDS)
    noise_seen(obs, "UDP endpoints in the dynamic range (49152-65535)",
               [("UDP", "endpoints", skipped_before, skipped_after)] if skipped_before or skipped_after else [],
               headers=("protocol", "what", "before", "after"))
    expected = set(policy.allow.listening_ports)
    allowed(obs, "ports policy.allow.listening_ports expects to open or close",
            changes.only(lambda key, *_: key[1] in expected))
    changes = changes.without(lambda key, *_: key[1] in expected)
    assert not changes, violation(obs, "listening ports opened, closed or changed owner", changes,
                                  headers=("protocol port", "field", "before", "after"))


@invariant("firewall.core_services", severity="blocker")
def test_firewall_services_running(obs):
    before, after = obs.baseline.area("services"), obs.post.area("services")
    rows = []
    for name in FIREWALL_SERVICES:
        new = after.get(name)
        if new is None or not new.running:
            old = before.get(name)
            rows.append((name, old.state if old else "absent", new.state if new else "absent"))
    assert not rows, before_after(obs, "Windows Defender Firewall (mpssvc) or the Base Filtering Engine (BFE) "
                                  "is not running", rows)
