"""Where a VM stood on the hotpatch track at baseline, as the checks that judge the track need it (hotpatch.track,
wsus.offered): a baseline the calendar cannot judge is inconclusive, one already off the track is skipped."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from patchgate.calendar.schedule import CalendarGap, HotpatchCalendar, TrackStatus


def on_track_at_baseline(obs, cal: HotpatchCalendar, installed: set[str], *, step: str,
                         ignore: Iterable[str] = ()) -> TrackStatus:
    was = cal.track_status(installed, ignore=ignore)
    if was.unknown:
        raise CalendarGap(cal.stale_message("installed at baseline: " + ", ".join(sorted(was.unknown))),
                          vm=obs.vm.name, step=step)
    if not was.on_track:
        why = ", ".join(sorted(was.offending)) or "no known baseline installed"
        pytest.skip(f"already off the hotpatch track at baseline ({why}); Windows Update offers it LCUs until the "
                    "next baseline")
    return was
