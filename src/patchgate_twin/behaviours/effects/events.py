"""The effect that writes an event log record, when it happens."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import Field

from patchgate_twin.behaviours.common import Strict
from patchgate_twin.behaviours.effects.base import EffectBase
from patchgate_twin.model import EventRecord, WindowsHost


class EventSpec(Strict):
    log_name: Literal["System", "Application"] = "System"
    provider_name: str
    id: int
    level: Literal["Critical", "Error", "Warning", "Information"] = "Information"
    message: str
    properties: list[str] = Field(default_factory=list)
    offset_seconds: float = Field(0, description="event time relative to the install (or the reboot)")


class AddEvent(EffectBase):
    """``add_event: {provider_name: ..., id: 7031, level: Error, message: ..., offset_seconds: 20}``: written
    ``offset_seconds`` Windows seconds (scaled) after the install or the reboot; no capture sees it before."""

    ACTION: ClassVar[str] = "add_event"
    add_event: EventSpec

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        ev = self.add_event
        host.log_event(EventRecord(ev.log_name, ev.provider_name, ev.id, ev.level, now, ev.message,
                                   list(ev.properties)), delay=ev.offset_seconds)
