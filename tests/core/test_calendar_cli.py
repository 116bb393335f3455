"""`patchgate calendar`: the calendar the track check uses, and importing Microsoft's release information page."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from patchgate.calendar.schedule import HotpatchCalendar
from patchgate.calendar.page import import_page, read_rows
from patchgate.config import load_lab
from patchgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "tests" / "data" / "calendar"
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATCHGATE, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_calendar_lists_every_month_through_december_2026_with_sources() -> None:
    proc = run("calendar")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "last month: 2026-12" in proc.stdout
    for month in [f"2026-{m:02d}" for m in range(1, 13)]:
        row = next((line for line in lines if line.startswith(month)), None)
        assert row is not None, month
        assert "https://" in row or "[U]" in row, row  # a source, or marked unverified
    assert any("KB5099536" in line and "26100.33158" in line and "baseline" in line for line in lines)
    assert any("KB5067035" in line and "ssu" in line for line in lines)


@pytest.mark.parametrize("page", ["release-info.md", "release-info.html"])
def test_import_turns_a_saved_page_into_the_expected_calendar_file(page: str, tmp_path: Path) -> None:
    out = tmp_path / "cal.yaml"
    proc = run("calendar", "import", str(PAGES / page), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (PAGES / "release-info.expected.yaml").read_text()
    cal = HotpatchCalendar.load(out)
    assert [q.id for q in cal.quarters] == ["2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3"]
    assert cal.classify("KB5091157") == "oob-unverified"  # the page's type does not say hotpatch
    assert cal.last_month == "2026-10" and cal.data.pending[0].kind == "baseline"


def test_imported_calendar_agrees_with_the_built_in_one_on_every_release_it_names() -> None:
    built_in = HotpatchCalendar.load()
    for row in read_rows((PAGES / "release-info.md").read_text()):
        if row.kb:
            assert built_in.release(row.kb) is not None and built_in.release(row.kb).build == row.build, row


def test_an_out_of_band_hotpatch_row_is_hotpatch_compatible(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent("""\
        | Month | Update type | KB article | OS build |
        |---|---|---|---|
        | October 14, 2025 | Baseline | KB5066835 | 26100.6899 |
        | October 24, 2025 | Out-of-band hotpatch | KB5070893 | 26100.6905 |
        """))
    out = tmp_path / "cal.yaml"
    out.write_text(import_page(page))
    assert HotpatchCalendar.load(out).classify("KB5070893") == "allowed-extra"


def test_a_page_without_the_table_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><table><tr><th>Channel</th></tr><tr><td>LTSC</td></tr></table></body></html>")
    with pytest.raises(ConfigError) as info:
        import_page(page)
    assert str(page) in str(info.value) and "Baseline" in str(info.value)
    proc = run("calendar", "import", str(page))
    assert proc.returncode == 4 and str(page) in proc.stderr


def test_a_lab_file_points_at_its_own_calendar(tmp_path: Path) -> None:
    twin = (ROOT / "labs" / "twin.yaml").read_text()
    (tmp_path / "mine.yaml").write_text((PAGES / "release-info.expected.yaml").read_text())
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(twin + "\ncalendar: mine.yaml\n")
    lab = load_lab(lab_file)
    assert lab.calendar_path == (tmp_path / "mine.yaml").resolve()
    proc = run("calendar", "--lab", str(lab_file))
    assert proc.returncode == 0 and str(tmp_path / "mine.yaml") in proc.stdout and "last month: 2026-10" in proc.stdout


def test_a_missing_lab_calendar_is_bad_input_naming_file_field_and_line(tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text((ROOT / "labs" / "twin.yaml").read_text() + "\ncalendar: nowhere.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_lab(lab_file)
    assert info.value.field == "calendar" and info.value.line is not None and "nowhere.yaml" in str(info.value)
