"""The Windows Server 2025 hotpatch calendar as data, and the track rule built on it.

Why data: baselines and hotpatch KBs change every month and Microsoft can insert unplanned baselines, so the
invariants must not hard-code KB numbers. The calendar lives in ``patchgate/data/hotpatch_calendar.yaml`` (sources
inside); a lab can point at its own copy.

The track rule (docs/calendar.md): the machine's *current quarter* is the quarter of the newest baseline it has
installed. A machine is on the hotpatch track when every installed OS cumulative update is allowed for that quarter:
the quarter's baseline and hotpatches, Microsoft's explicitly listed extras (KB5070893 for October 2025), OOB
releases whose KB article says they are hotpatch-compatible, the next quarter's baseline (which moves the track),
KBs of earlier quarters (superseded by the baseline), and ``always_allowed``. A known off-track release (an OOB LCU
such as KB5070881, a regular LCU such as KB5068861) means it left the track. Servicing stack and .NET updates are
outside hotpatch scope and never move a machine off the track. A KB the calendar does not know is *unknown*, not
off track: the calendar is stale, and callers must say so (inconclusive) rather than judge.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from patchgate.config.strict import Strict
from patchgate.config.validation import validate_document
from patchgate.config.yamlfile import load_yaml
from patchgate.errors import LabError
from patchgate.model.kb import kb_id

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "hotpatch_calendar.yaml"

KbClass = Literal["baseline", "hotpatch", "allowed-extra", "oob", "oob-unverified", "lcu", "checkpoint", "ssu",
                  "dotnet", "unknown"]
Confidence = Literal["microsoft", "3p", "unverified"]

UPDATE_HINT = ("add the missing months to the calendar from Microsoft's release information page "
               "(patchgate calendar import PAGE > my-calendar.yaml) and point the lab file's 'calendar:' at it; "
               "see docs/calendar.md")


class CalendarGap(LabError):
    """The calendar cannot judge a KB (unknown, unverified, or newer than its last month). Not a product verdict:
    like lab trouble it makes the run inconclusive, so a stale calendar can neither block nor approve."""


class Release(Strict):
    kb: str
    build: str = Field(..., pattern=r"^\d{5}\.\d{1,6}$")
    month: str | None = Field(None, pattern=r"^\d{4}-\d{2}$")
    released: dt.date | None = None
    kind: Literal["oob", "lcu"] | None = None
    hotpatch_compatible: bool | None = Field(None, description="OOB releases: what the KB article says; None = [U]")
    source: str = ""
    confidence: Confidence = "microsoft"
    note: str = ""

    _norm = field_validator("kb")(classmethod(lambda cls, v: kb_id(v)))

    @property
    def ubr(self) -> int:
        return int(self.build.split(".")[1])


class Quarter(Strict):
    id: str = Field(..., pattern=r"^\d{4}Q[1-4]$")
    baseline: Release
    hotpatches: list[Release] = Field(default_factory=list)
    allowed_extras: list[Release] = Field(default_factory=list)
    off_track: list[Release] = Field(default_factory=list)
    oob: list[Release] = Field(default_factory=list, description="out-of-band releases, each with hotpatch_compatible")

    @property
    def releases(self) -> list[Release]:
        return [self.baseline, *self.hotpatches, *self.allowed_extras, *self.off_track, *self.oob]

    @property
    def kbs(self) -> set[str]:
        return {r.kb for r in self.releases}

    @property
    def track_kbs(self) -> set[str]:
        """The KBs that keep a machine on the track within this quarter."""
        return {self.baseline.kb, *(r.kb for r in self.hotpatches), *(r.kb for r in self.allowed_extras),
                *(r.kb for r in self.oob if r.hotpatch_compatible)}


class PendingMonth(Strict):
    """A month Microsoft has shipped (or planned) whose KB the calendar could not verify [U]: listed so the calendar
    shows it, never used to keep a machine on the track."""

    month: str = Field(..., pattern=r"^\d{4}-\d{2}$")
    kind: Literal["baseline", "hotpatch"]
    lcu_build: str | None = Field(None, pattern=r"^\d{5}\.\d{1,6}$", description="the month's LCU build, if known")
    source: str = ""
    note: str = ""


class NonOsUpdate(Strict):
    """A servicing stack or .NET update: outside hotpatch scope, never judged by the track rule."""

    kb: str
    kind: Literal["ssu", "dotnet"]
    source: str = ""
    note: str = ""

    _norm = field_validator("kb")(classmethod(lambda cls, v: kb_id(v)))


class CalendarFile(Strict):
    product: str
    current_build: str
    sources: list[str] = Field(default_factory=list)
    always_allowed: list[str] = Field(default_factory=list)
    quarters: list[Quarter] = Field(..., min_length=1)
    pending: list[PendingMonth] = Field(default_factory=list)
    non_os: list[NonOsUpdate] = Field(default_factory=list)
    taken_on: dt.date | None = Field(None, description="when the sources were last read")

    _norm = field_validator("always_allowed")(classmethod(lambda cls, v: [kb_id(x) for x in v]))


@dataclass(frozen=True)
class TrackStatus:
    """Where a machine stands on the calendar, from its installed KBs alone."""

    quarter: str | None  # None: no known baseline installed
    on_track: bool
    offending: frozenset[str] = field(default_factory=frozenset)  # installed KBs that took it off the track
    allowed: frozenset[str] = field(default_factory=frozenset)
    unknown: frozenset[str] = field(default_factory=frozenset)  # installed KBs the calendar cannot judge
    ignored: frozenset[str] = field(default_factory=frozenset)  # SSU / .NET: outside hotpatch scope


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
            for r in q.oob:
                kind: KbClass = ("allowed-extra" if r.hotpatch_compatible else
                                 "oob" if r.hotpatch_compatible is False else "oob-unverified")
                self._by_kb[r.kb] = (q, r, kind)
        self._non_os = {u.kb: u for u in data.non_os}

    @classmethod
    def load(cls, path: Path | None = None) -> HotpatchCalendar:
        path = path or DEFAULT_PATH
        return cls(validate_document(CalendarFile, load_yaml(path, what="hotpatch calendar")), path)

    # ------------------------------------------------------------ lookups

    def classify(self, kb: str) -> KbClass:
        kb = kb.upper()
        if kb in self.data.always_allowed:
            return "checkpoint"
        if kb in self._non_os:
            return self._non_os[kb].kind
        entry = self._by_kb.get(kb)
        return entry[2] if entry else "unknown"

    @property
    def last_month(self) -> str:
        """The newest month the calendar lists (a release or a pending month): its end."""
        months = [r.month or (r.released.strftime("%Y-%m") if r.released else "") for q in self.quarters
                  for r in q.releases] + [p.month for p in self.data.pending]
        return max(m for m in months if m)

    def covers(self, day: dt.date) -> bool:
        return day.strftime("%Y-%m") <= self.last_month

    def stale_message(self, what: str) -> str:
        """Why the calendar cannot judge ``what``, naming its end and how to update it."""
        return (f"{what}: the hotpatch calendar ({self.source}) ends at {self.last_month} and cannot judge it; "
                + UPDATE_HINT)

    def release(self, kb: str) -> Release | None:
        entry = self._by_kb.get(kb.upper())
        return entry[1] if entry else None

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
        # A later baseline is a full cumulative update: installing it moves the track forward.
        allowed |= {q.baseline.kb for q in self.quarters if q.id > current.id}
        return allowed

    def track_status(self, installed_kbs: Iterable[str], *, ignore: Iterable[str] = ()) -> TrackStatus:
        """Judge the OS cumulative updates only: SSU/.NET KBs (calendar ``non_os``, or ``ignore``, e.g. a candidate
        classified ``ssu``/``dotnet``) are set aside; KBs the calendar cannot judge are reported as ``unknown``."""
        every = {k.upper() for k in installed_kbs}
        ignored = {k for k in every if k in self._non_os} | ({k.upper() for k in ignore} & every)
        kbs = every - ignored
        current = self.current_quarter(kbs)
        allowed = self.allowed_kbs_for(kbs)
        outside = kbs - allowed
        unknown = frozenset(k for k in outside if self.classify(k) in ("unknown", "oob-unverified"))
        if current is None:
            return TrackStatus(None, False, frozenset(outside), frozenset(allowed), unknown, frozenset(ignored))
        return TrackStatus(current.id, not outside, frozenset(outside), frozenset(allowed), unknown,
                           frozenset(ignored))

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


def track_status(installed_kbs: Iterable[str], *, ignore: Iterable[str] = ()) -> TrackStatus:
    return default_calendar().track_status(installed_kbs, ignore=ignore)


__all__ = [
    "DEFAULT_PATH",
    "UPDATE_HINT",
    "CalendarGap",
    "HotpatchCalendar",
    "KbClass",
    "NonOsUpdate",
    "PendingMonth",
    "Quarter",
    "Release",
    "TrackStatus",
    "allowed_kbs_for",
    "classify",
    "default_calendar",
    "quarter_for_baseline",
    "track_status",
]
