"""Effects on the firewall posture: profiles, rules, and the network category of each interface."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from patchgate_twin import specs
from patchgate_twin.behaviours.effects.base import EffectBase, patch_of
from patchgate_twin.behaviours.windows import patched
from patchgate_twin.model import FirewallProfile, FirewallRule, NetConnectionProfile, WindowsHost


class SetFirewallProfile(EffectBase):
    """``set_firewall_profile: {name: Public, default_inbound_action: Allow}``."""

    ACTION: ClassVar[str] = "set_firewall_profile"
    set_firewall_profile: Annotated[dict[str, Any], patch_of(FirewallProfile, key="name")]

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        name = self.set_firewall_profile["name"]
        current = host.firewall_profiles.get(name) or FirewallProfile(name=name)
        host.firewall_profiles[name] = patched(current, self.set_firewall_profile)


class UpsertFirewallRule(EffectBase):
    """``upsert_firewall_rule: {name: FPS-SMB-In-TCP, enabled: false}``; a new rule defaults to inbound Allow."""

    ACTION: ClassVar[str] = "upsert_firewall_rule"
    upsert_firewall_rule: Annotated[dict[str, Any], patch_of(FirewallRule, key="name")]

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        name = self.upsert_firewall_rule["name"]
        current = host.firewall_rules.get(name) or FirewallRule(name=name, display_name=name)
        host.firewall_rules[name] = patched(current, self.upsert_firewall_rule)


class RemoveFirewallRule(EffectBase):
    """``remove_firewall_rule: Name``."""

    ACTION: ClassVar[str] = "remove_firewall_rule"
    remove_firewall_rule: str

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        host.firewall_rules.pop(self.remove_firewall_rule, None)


class UpsertConnectionProfile(EffectBase):
    """``upsert_connection_profile: {interface_alias: Ethernet, network_category: Public}``."""

    ACTION: ClassVar[str] = "upsert_connection_profile"
    upsert_connection_profile: Annotated[dict[str, Any], patch_of(NetConnectionProfile, key="interface_alias")]

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        data = self.upsert_connection_profile
        for i, prof in enumerate(host.connection_profiles):
            if prof.interface_alias == data["interface_alias"]:
                host.connection_profiles[i] = patched(prof, data)
                return
        host.connection_profiles.append(specs.build(NetConnectionProfile, data))


class RemoveConnectionProfile(EffectBase):
    """``remove_connection_profile: InterfaceAlias``."""

    ACTION: ClassVar[str] = "remove_connection_profile"
    remove_connection_profile: str

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        host.connection_profiles = [p for p in host.connection_profiles
                                    if p.interface_alias != self.remove_connection_profile]
