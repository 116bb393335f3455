"""Conditions: a test on host state that guards an effect, a restart or a behaviour's applicability."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from patchgate_twin.behaviours.common import Strict, norm_kbs
from patchgate_twin.model import WindowsHost


class Condition(Strict):
    """A test on host state. Keys in one mapping must all hold; ``any``/``all``/``not`` combine."""

    hotpatch_enrolled: bool | None = None
    wsus_role: bool | None = None
    arc_enrolled: bool | None = None
    azure_edition: bool | None = None
    edition_in: list[str] | None = None
    has_kb: list[str] | None = None
    not_kb: list[str] | None = None
    ubr_in: list[int] | None = None
    ubr_at_least: int | None = None
    ubr_below: int | None = None
    license_state: Literal["Licensed", "Unlicensed", "NotApplicable"] | None = None
    feature_licensing_override: bool | None = None
    on_hotpatch_track: bool | None = None
    service_running: str | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @field_validator("has_kb", "not_kb", mode="before")
    @classmethod
    def _kbs(cls, value: Any) -> Any:
        return norm_kbs(value)

    def holds(self, host: WindowsHost) -> bool:
        checks: list[bool] = []
        if self.hotpatch_enrolled is not None:
            checks.append(host.hotpatch_enrolled == self.hotpatch_enrolled)
        if self.wsus_role is not None:
            checks.append(host.wsus.role_installed == self.wsus_role)
        if self.arc_enrolled is not None:
            checks.append(host.hotpatch.arc_enrolled == self.arc_enrolled)
        if self.azure_edition is not None:
            checks.append(host.is_azure_edition == self.azure_edition)
        if self.edition_in is not None:
            checks.append(host.edition_id in self.edition_in)
        if self.has_kb is not None:
            checks.append(all(host.has_kb(k) for k in self.has_kb))
        if self.not_kb is not None:
            checks.append(not any(host.has_kb(k) for k in self.not_kb))
        if self.ubr_in is not None:
            checks.append(host.ubr in self.ubr_in)
        if self.ubr_at_least is not None:
            checks.append(host.ubr >= self.ubr_at_least)
        if self.ubr_below is not None:
            checks.append(host.ubr < self.ubr_below)
        if self.license_state is not None:
            checks.append(host.hotpatch.license_state == self.license_state)
        if self.feature_licensing_override is not None:
            checks.append(host.hotpatch.feature_licensing_override == self.feature_licensing_override)
        if self.on_hotpatch_track is not None:
            from patchgate.calendar.schedule import default_calendar

            on = default_calendar().on_track(h.hotfix_id for h in host.hotfixes)
            checks.append(on == self.on_hotpatch_track)
        if self.service_running is not None:
            svc = host.services.get(self.service_running)
            checks.append(bool(svc and svc.state == "Running"))
        if self.all is not None:
            checks.append(all(c.holds(host) for c in self.all))
        if self.any is not None:
            checks.append(any(c.holds(host) for c in self.any))
        if self.not_ is not None:
            checks.append(not self.not_.holds(host))
        return all(checks)


Condition.model_rebuild()
