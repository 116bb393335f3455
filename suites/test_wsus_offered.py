"""WSUS offering: a hotpatch-enrolled VM on the hotpatch track must be offered only updates that keep it there.

The October 2025 incident was an offering fault: WSUS offered KB5070881 to enrolled Windows Server 2025 machines,
and installing it takes a machine off the hotpatch track until the next baseline (Microsoft Learn, Hotpatch for
Arc-enabled servers, Known issues, 2025-10-30: only KB5066835 or KB5070893 keep it on). An enrolled machine on the
track may be offered the calendar's hotpatch, a hotpatch-compatible OOB (KB5070893) or a later baseline, never
another LCU or OOB. Judged on what the VM's own Windows Update Agent was offered (lab `install: {via: wsus}`,
docs/wsus.md). Hotpatch delivery through WSUS is not documented by Microsoft [U]: an offered hotpatch is
inconclusive, never a pass.
"""

from __future__ import annotations

import pytest

from patchgate.calendar.schedule import CalendarGap
from patchgate.errors import LabError
from patchgate_pytest.invariants import applies_to, invariant, note
from patchgate_pytest.messages import violation
from patchgate_pytest.track import on_track_at_baseline

pytestmark = applies_to("hotpatch-member", "member", "domain-controller", "wsus-server")

HEADERS = ("KB", "title", "WSUS classification", "hotpatch", "calendar class", "keeps the track")


def _offered(obs) -> list[dict]:
    offer = obs.wsus or {}
    if "offered" not in offer:
        pytest.skip(f"{obs.vm.name} did not get the candidate through WSUS (lab install.via, or the lab's WSUS "
                    "server itself): no offer to judge")
    return [o for o in offer["offered"] if isinstance(o, dict)]


def _enrolled_baseline(obs, cal, extra: set[str]) -> tuple[set[str], set[str]]:
    """The baseline's KBs and those the track allows, for an enrolled VM on the track; skips (or breaks) the
    check otherwise."""
    if not obs.baseline.area("hotpatch").enrolled:
        if obs.vm.role == "hotpatch-member":
            raise LabError("role is hotpatch-member but the baseline is not hotpatch-enrolled: fix the snapshot",
                           vm=obs.vm.name, step="capture_baseline")
        pytest.skip(f"{obs.vm.name} is not hotpatch-enrolled at baseline: no offer can take it off the track")
    before = obs.baseline.area("updates").kb_ids
    was = on_track_at_baseline(obs, cal, before - extra, step="wsus.offered")
    return before, set(was.allowed) | extra


@invariant("wsus.offered", severity="blocker")
def test_an_enrolled_vm_is_offered_only_hotpatch_compatible_updates(obs, policy, hotpatch_calendar):
    offered = _offered(obs)
    cal, extra = hotpatch_calendar, set(policy.allow.kbs)
    before, allowed = _enrolled_baseline(obs, cal, extra)
    rows, off, unknown, hotpatches = [], [], [], []
    for item in offered:
        kb = str(item.get("Kb") or "").upper()
        kind = cal.classify(kb) if kb else "unknown"
        keeps = bool(kb) and (kb in extra or cal.track_status((before | {kb}) - extra).on_track)
        if not kb or (kind in ("unknown", "oob-unverified") and kb not in extra):
            unknown.append(kb or f"(no KB number: {item.get('Title')})")
        elif not keeps:
            off.append(kb)
        if item.get("Hotpatch") or kind == "hotpatch":
            hotpatches.append(kb)
        rows.append((kb or "-", item.get("Title") or "-", item.get("Classification") or "-",
                     "yes" if item.get("Hotpatch") else "no", kind, "yes" if keeps else "no"))
    note(violation(obs, f"evidence: what WSUS {(obs.wsus or {}).get('server')} offered", rows, headers=HEADERS))
    assert not off, violation(
        obs, f"WSUS offered {', '.join(off)}, which takes this enrolled VM off the hotpatch track (monthly restart "
        "LCUs until the next baseline)", rows, headers=HEADERS,
        hint="Decline it for enrolled machines (Microsoft offers them KB5070893 instead of KB5070881). Allowed on "
             "this track: " + ", ".join(sorted(allowed)))
    if unknown:
        raise CalendarGap(cal.stale_message("offered by WSUS: " + ", ".join(unknown)), vm=obs.vm.name,
                          step="wsus.offered")
    if hotpatches:
        raise LabError(f"WSUS offered the hotpatch {', '.join(hotpatches)}: Microsoft does not document hotpatch "
                       "delivery through WSUS [U] (docs/wsus.md), so this offer cannot stand for production's",
                       vm=obs.vm.name, step="wsus.offered")
