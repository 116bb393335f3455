"""The WS2025 hotpatch calendar and the track rule the invariants use."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from patchgate import calendar
from patchgate.calendar import HotpatchCalendar
from patchgate.errors import ConfigError
from patchgate.twin.catalog import Catalog

OCT = ["KB5043080", "KB5066835"]


def test_quarters_and_builds() -> None:
    cal = calendar.default_calendar()
    assert [q.id for q in cal.quarters] == ["2025Q3", "2025Q4", "2026Q1", "2026Q2"]
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
        for release in [q.baseline, *q.hotpatches, *q.allowed_extras, *q.off_track]:
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
