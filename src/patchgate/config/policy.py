"""A lab's policy: what may legitimately change (allowlists) and accepted, expiring exceptions (waivers)."""

from __future__ import annotations

import datetime as dt
import difflib

from pydantic import Field, field_validator, model_validator

from patchgate.config.strict import Strict
from patchgate.model.kb import kb_id

INVARIANT_ID = r"^(hotpatch|wsus|services|firewall|management)\.[a-z0-9_]+$"
INVARIANTS = frozenset({
    "hotpatch.enrollment", "hotpatch.arc_agent", "hotpatch.no_restart", "hotpatch.build", "hotpatch.track",
    "hotpatch.reboot_pending", "wsus.role", "wsus.services", "wsus.app_pool", "wsus.ports", "wsus.sync",
    "wsus.exploitation_indicators", "services.auto_start_running", "services.configuration",
    "services.scm_failures", "services.new_services", "firewall.profiles", "firewall.rules", "firewall.exposure",
    "firewall.listening_ports", "firewall.core_services", "management.reachable", "wsus.offered",
})
"""Every invariant the suites check (docs/invariants.md): a waiver naming another one could never apply."""


class Allowlists(Strict):
    """Changes that are expected and never fail an invariant; each is still shown in the diff."""

    firewall_rule_groups: list[str] = Field(default_factory=list,
                                            description="rule Group values an update may change")
    firewall_rules: list[str] = Field(default_factory=list, description="rule Names an update may change")
    services: list[str] = Field(default_factory=list, description="service Names expected to change")
    new_services: list[str] = Field(default_factory=list, description="services an update may install")
    listening_ports: list[int] = Field(default_factory=list, description="ports that may open or close")
    kbs: list[str] = Field(default_factory=list,
                           description="extra KBs accepted on the hotpatch track (beyond the calendar)")

    @field_validator("kbs")
    @classmethod
    def _kb_ids(cls, value: list[str]) -> list[str]:
        return [kb_id(kb, bare_number=True) for kb in value]


class Waiver(Strict):
    """An accepted failure of one invariant on some VMs, owned by a person, until a date."""

    invariant: str = Field(..., pattern=INVARIANT_ID, description="for example hotpatch.track")
    vms: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    justification: str = Field(..., min_length=10)
    owner: str = Field(..., min_length=1)
    expires: dt.date
    candidate: str | None = Field(None, description="only for this KB; every candidate when absent")

    @field_validator("invariant")
    @classmethod
    def _known_invariant(cls, value: str) -> str:
        if value not in INVARIANTS:
            close = difflib.get_close_matches(value, sorted(INVARIANTS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(INVARIANTS))}"
            raise ValueError(f"unknown invariant '{value}', so the waiver could never apply ({hint})")
        return value

    @model_validator(mode="after")
    def _scope(self) -> "Waiver":
        if not self.vms and not self.roles:
            raise ValueError("a waiver needs 'vms' or 'roles' so it cannot silently cover the whole lab")
        return self

    def covers(self, *, invariant: str, vm: str, role: str, candidate: str) -> bool:
        if invariant != self.invariant:
            return False
        if self.candidate and self.candidate.upper() != candidate.upper():
            return False
        return vm in self.vms or role in self.roles

    def expired(self, today: dt.date) -> bool:
        return today > self.expires


class Policy(Strict):
    allow: Allowlists = Allowlists()
    waivers: list[Waiver] = Field(default_factory=list)
