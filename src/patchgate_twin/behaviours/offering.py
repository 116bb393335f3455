"""``offered_to``: to which hosts a WSUS server offers an update, as Microsoft's applicability metadata said on a
given day. Microsoft revises an update's metadata after release (KB5070881 was offered to every Windows Server
2025 machine at first, then only to those not enrolled in hotpatch), so each rule holds for a window of days; the
day that counts is the one of the metadata the twin's WSUS server holds (``wsus.metadata_as_of`` of its image)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, field_validator, model_validator

from patchgate_twin.behaviours.common import Strict, check_urls
from patchgate_twin.behaviours.conditions import Condition
from patchgate_twin.model import WindowsHost


class OfferRule(Strict):
    """While the metadata is from ``from`` (inclusive) to ``until`` (exclusive), WSUS offers the update to the
    hosts ``when`` holds for (every host its ``applies_to`` matches, without ``when``)."""

    from_: dt.date | None = Field(None, alias="from")
    until: dt.date | None = None
    when: Condition | None = None
    note: str = ""
    sources: list[str] = Field(default_factory=list)

    _urls = field_validator("sources")(classmethod(lambda cls, value: check_urls(value)))

    @model_validator(mode="after")
    def _window(self) -> OfferRule:
        if self.from_ and self.until and self.until <= self.from_:
            raise ValueError(f"until {self.until} is not after from {self.from_}")
        return self

    def covers(self, day: dt.date | None) -> bool:
        """``day`` None stands for the newest metadata: only a rule without ``until`` covers it."""
        if day is None:
            return self.until is None
        return (self.from_ is None or self.from_ <= day) and (self.until is None or day < self.until)


def offered(rules: list[OfferRule], released: dt.date | None, host: WindowsHost, day: dt.date | None) -> bool:
    """Whether WSUS offers an applicable update to ``host``: not before it was released, and, with rules, when a
    rule for ``day`` holds for the host. An update without rules is offered wherever it applies."""
    if day is not None and released is not None and released > day:
        return False
    if not rules:
        return True
    return any(rule.covers(day) and (rule.when is None or rule.when.holds(host)) for rule in rules)
