"""The Windows Server 2025 hotpatch calendar as data, and the track rule built on it.

Why data: baselines and hotpatch KBs change every month and Microsoft can insert unplanned baselines, so the
invariants must not hard-code KB numbers. The calendar lives in ``patchgate/data/hotpatch_calendar.yaml`` (sources
inside); a lab can point at its own copy.

The track rule (docs/calendar.md): the machine's *current quarter* is the quarter of the newest baseline it has
installed. A machine is on the hotpatch track when every installed KB is allowed for that quarter: the quarter's
baseline and hotpatches, Microsoft's explicitly listed extras (KB5070893 for October 2025), the next quarter's
baseline (which moves the track), KBs of earlier quarters (superseded by the baseline), and ``always_allowed``.
Anything else (an OOB LCU such as KB5070881, a regular LCU such as KB5068861, an unknown KB) means it left the track.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from patchgate.config.validation import validate_document
from patchgate.config.yamlfile import load_yaml

DEFAULT_PATH = Path(__file__).with_name("data") / "hotpatch_calendar.yaml"

KbClass = Literal["baseline", "hotpatch", "allowed-extra", "oob", "lcu", "checkpoint", "unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _kb(value: str) -> str:
    norm = value.upper()
    if not re.fullmatch(r"KB\d{6,8}", norm):
        raise ValueError(f"'{value}' is not a KB id such as KB5066835")
    return norm


class Release(_Strict):
    kb: str
    build: str = Field(..., pattern=r"^\d{5}\.\d{1,6}$")
    month: str | None = Field(None, pattern=r"^\d{4}-\d{2}$")
    released: dt.date | None = None
    kind: Literal["oob", "lcu"] | None = None
    note: str = ""

    _norm = field_validator("kb")(classmethod(lambda cls, v: _kb(v)))

    @property
    def ubr(self) -> int:
        return int(self.build.split(".")[1])


class Quarter(_Strict):
    id: str = Field(..., pattern=r"^\d{4}Q[1-4]$")
    baseline: Release
    hotpatches: list[Release] = Field(default_factory=list)
    allowed_extras: list[Release] = Field(default_factory=list)
    off_track: list[Release] = Field(default_factory=list)

    @property
    def kbs(self) -> set[str]:
        return {r.kb for r in [self.baseline, *self.hotpatches, *self.allowed_extras, *self.off_track]}

    @property
    def track_kbs(self) -> set[str]:
        """The KBs that keep a machine on the track within this quarter."""
        return {self.baseline.kb, *(r.kb for r in self.hotpatches), *(r.kb for r in self.allowed_extras)}


class CalendarFile(_Strict):
    product: str
    current_build: str
    sources: list[str] = Field(default_factory=list)
    always_allowed: list[str] = Field(default_factory=list)
    quarters: list[Quarter] = Field(..., min_length=1)

    _norm = field_validator("always_allowed")(classmethod(lambda cls, v: [_kb(x) for x in v]))


@dataclass(frozen=True)
class TrackStatus:
    """Where a machine stands on the calendar, from its installed KBs alone."""

    quarter: str | None  # None: no known baseline installed
    on_track: bool
    offending: frozenset[str] = field(default_factory=frozenset)  # installed KBs that took it off the track
    allowed: frozenset[str] = field(default_factory=frozenset)


class HotpatchCalendar:
    def __init__(self, data: CalendarFile, source: Path) -> None:
        self.data = data
        self.source = source
        self.quarters = sorted(data.quarters, key=lambda q: q.id)
        self._index = {q.id: i for i, q in enumerate(self.quarters)}
        self._by_kb: dict[str, tuple[Quarter, Release, KbClass]] = {}
        for q in self.quarters:
            self._by_kb[q.baseline.kb] = (q, q.baseline, "baseline")
            for r in q.hotpatches:
                self._by_kb[r.kb] = (q, r, "hotpatch")
            for r in q.allowed_extras:
                self._by_kb[r.kb] = (q, r, "allowed-extra")
            for r in q.off_track:
                self._by_kb[r.kb] = (q, r, r.kind or "lcu")

    @classmethod
    def load(cls, path: Path | None = None) -> HotpatchCalendar:
        path = path or DEFAULT_PATH
        return cls(validate_document(CalendarFile, load_yaml(path, what="hotpatch calendar")), path)

    # ------------------------------------------------------------ lookups

    def classify(self, kb: str) -> KbClass:
        kb = kb.upper()
        if kb in self.data.always_allowed:
            return "checkpoint"
        entry = self._by_kb.get(kb)
        return entry[2] if entry else "unknown"

    def release(self, kb: str) -> Release | None:
        entry = self._by_kb.get(kb.upper())
        return entry[1] if entry else None

    def quarter_of(self, kb: str) -> Quarter | None:
        entry = self._by_kb.get(kb.upper())
        return entry[0] if entry else None

    def quarter_for_baseline(self, kb: str) -> Quarter | None:
        """The quarter that ``kb`` is the baseline of, or None."""
        entry = self._by_kb.get(kb.upper())
        return entry[0] if entry and entry[2] == "baseline" else None

    def next_quarter(self, quarter: Quarter) -> Quarter | None:
        i = self._index[quarter.id]
        return self.quarters[i + 1] if i + 1 < len(self.quarters) else None

    def current_quarter(self, installed_kbs: Iterable[str]) -> Quarter | None:
        """The quarter of the newest installed baseline."""
        found = [q for q in (self.quarter_for_baseline(k) for k in installed_kbs) if q is not None]
        return max(found, key=lambda q: q.id) if found else None

    # ------------------------------------------------------------ the track rule

    def allowed_kbs_for(self, installed_kbs: Iterable[str]) -> set[str]:
        """KBs a machine with ``installed_kbs`` may have (or install next) and stay on the hotpatch track."""
        kbs = {k.upper() for k in installed_kbs}
        allowed = set(self.data.always_allowed)
        current = self.current_quarter(kbs)
        if current is None:
            return allowed
        for q in self.quarters:
            if q.id < current.id:
                allowed |= q.kbs  # whatever happened before the current baseline was reset by it
        allowed |= current.track_kbs
        following = self.next_quarter(current)
        if following is not None:
            allowed.add(following.baseline.kb)
        return allowed

    def track_status(self, installed_kbs: Iterable[str]) -> TrackStatus:
        kbs = {k.upper() for k in installed_kbs}
        current = self.current_quarter(kbs)
        allowed = self.allowed_kbs_for(kbs)
        if current is None:
            return TrackStatus(None, False, frozenset(kbs - allowed), frozenset(allowed))
        offending = frozenset(kbs - allowed)
        return TrackStatus(current.id, not offending, offending, frozenset(allowed))

    def on_track(self, installed_kbs: Iterable[str]) -> bool:
        return self.track_status(installed_kbs).on_track


@functools.cache
def default_calendar() -> HotpatchCalendar:
    return HotpatchCalendar.load()


def allowed_kbs_for(installed_kbs: Iterable[str]) -> set[str]:
    """Module-level shortcut on the built-in calendar."""
    return default_calendar().allowed_kbs_for(installed_kbs)


def quarter_for_baseline(kb: str) -> Quarter | None:
    return default_calendar().quarter_for_baseline(kb)


def classify(kb: str) -> KbClass:
    return default_calendar().classify(kb)


def track_status(installed_kbs: Iterable[str]) -> TrackStatus:
    return default_calendar().track_status(installed_kbs)


__all__ = [
    "DEFAULT_PATH",
    "HotpatchCalendar",
    "KbClass",
    "Quarter",
    "Release",
    "TrackStatus",
    "allowed_kbs_for",
    "classify",
    "default_calendar",
    "quarter_for_baseline",
    "track_status",
]
