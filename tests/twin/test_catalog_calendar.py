"""The WS2025 hotpatch calendar and the track rule the invariants use."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from patchgate.calendar import schedule as calendar
from patchgate.calendar.schedule import HotpatchCalendar
from patchgate.errors import ConfigError
from patchgate_twin.catalog import Catalog

OCT = ["KB5043080", "KB5066835"]


def test_quarters_and_builds() -> None:
    cal = calendar.default_calendar()
    assert [q.id for q in cal.quarters] == ["2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3"]
    q4 = calendar.quarter_for_baseline("KB5066835")
    assert q4 is not None and q4.baseline.build == "26100.6899"
    assert [h.build for h in q4.hotpatches] == ["26100.7092", "26100.7392"]
    assert calendar.quarter_for_baseline("KB5068966") is None  # a hotpatch, not a baseline
    assert cal.release("KB5073379").ubr == 32230


@pytest.mark.parametrize(("kb", "kind"), [
    ("KB5066835", "baseline"), ("KB5068966", "hotpatch"), ("kb5070893", "allowed-extra"), ("KB5070881", "oob"),
    ("KB5068861", "lcu"), ("KB5043080", "checkpoint"), ("KB5999999", "unknown"), ("KB5087423", "hotpatch"),
])
def test_classify(kb: str, kind: str) -> None:
    assert calendar.classify(kb) == kind


def test_allowed_kbs_for_the_october_quarter() -> None:
    allowed = calendar.allowed_kbs_for(OCT)
    assert {"KB5066835", "KB5068966", "KB5072014", "KB5070893", "KB5073379"} <= allowed
    assert "KB5070881" not in allowed and "KB5068861" not in allowed
    assert "KB5075942" not in allowed  # next quarter's hotpatches need next quarter's baseline first


@pytest.mark.parametrize(("kbs", "on_track", "quarter", "offending"), [
    (OCT, True, "2025Q4", set()),
    (OCT + ["KB5070893"], True, "2025Q4", set()),
    (OCT + ["KB5070893", "KB5068966", "KB5072014"], True, "2025Q4", set()),
    (OCT + ["KB5070881"], False, "2025Q4", {"KB5070881"}),
    (OCT + ["KB5070881", "KB5068861"], False, "2025Q4", {"KB5070881", "KB5068861"}),
    (OCT + ["KB5070881", "KB5068861", "KB5073379"], True, "2026Q1", set()),  # the January baseline rejoins
    (OCT + ["KB5999999"], False, "2025Q4", {"KB5999999"}),  # "any other update not explicitly listed"
    (["KB5043080", "KB5062553", "KB5065474"], True, "2025Q3", set()),
    (["KB5043080", "KB5062553", "KB5066835"], True, "2025Q4", set()),  # the next baseline moves the track
    (["KB5043080"], False, None, set()),
])
def test_track_rule(kbs: list[str], on_track: bool, quarter: str | None, offending: set[str]) -> None:
    status = calendar.track_status(kbs)
    assert status.on_track is on_track and status.quarter == quarter and set(status.offending) == offending


def test_every_calendar_kb_has_a_behaviour_with_the_same_build() -> None:
    catalog = Catalog.load()
    cal = calendar.default_calendar()
    for q in cal.quarters:
        for release in q.releases:
            b = catalog.behaviour(release.kb)
            assert b.build == release.build, release.kb
    hotpatch_kbs = {h.kb for q in cal.quarters for h in q.hotpatches}
    assert {b.kb for b in catalog.behaviours() if b.classification == "hotpatch" and not b.synthetic} == hotpatch_kbs


def test_a_lab_calendar_with_an_unplanned_baseline(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(textwrap.dedent("""\
        product: Windows Server 2025
        current_build: "26100"
        quarters:
          - id: 2025Q4
            baseline: {kb: KB5066835, build: "26100.6899"}
          - id: 2025Q5
            baseline: {kb: KB5099999, build: "26100.7000"}
        """))
    with pytest.raises(ConfigError) as info:
        HotpatchCalendar.load(path)
    assert info.value.line == 6 and "quarters[1].id" in (info.value.field or "")
    path.write_text(path.read_text().replace("2025Q5", "2026Q1"))
    cal = HotpatchCalendar.load(path)
    assert cal.track_status(["KB5066835", "KB5099999"]).quarter == "2026Q1"


def test_the_calendar_reaches_december_2026_and_every_month_has_a_source() -> None:
    cal = calendar.default_calendar()
    assert cal.last_month == "2026-12"
    listed = {r.month or r.released.strftime("%Y-%m") for q in cal.quarters for r in q.releases}
    listed |= {p.month for p in cal.data.pending}
    assert {f"2026-{m:02d}" for m in range(1, 13)} <= listed
    assert all(p.source or "[U]" in p.note for p in cal.data.pending)
    assert all(r.source or r.confidence == "microsoft" or "[3P]" in r.note for q in cal.quarters for r in q.releases)


@pytest.mark.parametrize(("kb", "kind"), [
    ("KB5099536", "baseline"), ("KB5091157", "oob-unverified"), ("KB5067035", "ssu"), ("KB5064531", "ssu"),
])
def test_classify_2026_and_non_os(kb: str, kind: str) -> None:
    assert calendar.classify(kb) == kind


def test_ssu_and_ignored_kbs_never_move_a_machine_off_the_track() -> None:
    status = calendar.track_status(OCT + ["KB5067035"])
    assert status.on_track and status.ignored == {"KB5067035"} and not status.unknown
    assert calendar.track_status(OCT + ["KB5070881", "KB5067035"]).offending == {"KB5070881"}
    assert calendar.track_status(OCT + ["KB5999998"], ignore=["KB5999998"]).on_track  # e.g. a .NET candidate
    assert not calendar.track_status(OCT + ["KB5999998"]).on_track


def test_unknown_and_unverified_kbs_are_reported_apart_from_known_off_track_ones() -> None:
    status = calendar.track_status(OCT + ["KB5999999", "KB5070881"])
    assert status.unknown == {"KB5999999"} and status.offending == {"KB5999999", "KB5070881"}
    april = ["KB5043080", "KB5082063", "KB5091157"]
    assert calendar.track_status(april).unknown == {"KB5091157"}  # hotpatch compatibility [U]


def test_any_later_baseline_moves_the_track_forward() -> None:
    jan = ["KB5043080", "KB5073379"]
    assert "KB5099536" in calendar.allowed_kbs_for(jan)
    assert calendar.track_status(jan + ["KB5099536"]).quarter == "2026Q3"


def test_covers_and_the_stale_message_name_the_end_and_the_fix() -> None:
    import datetime as dt

    cal = calendar.default_calendar()
    assert cal.covers(dt.date(2026, 12, 9)) and not cal.covers(dt.date(2027, 1, 12))
    message = cal.stale_message("KB5999999")
    assert "ends at 2026-12" in message and "patchgate calendar import" in message and "calendar:" in message
