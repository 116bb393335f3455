"""The hotpatch track in real runs, as Get-HotFix looks on real machines: servicing stack and .NET updates never move
a machine off the track, and a calendar that cannot judge a KB (or a candidate newer than its last month) makes the
run inconclusive, naming the calendar's end and how to update it, never a block or an approve."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from patchgate_twin.catalog import Catalog
from tests.invariants import catalogue_runs as cr
from tests.invariants.catalogue_runs import Run, vm_name

pytestmark = pytest.mark.slow

IMAGE = "ws2025-dc-hotpatch-oct2025"  # enrolled; its Get-HotFix lists the SSU KB5067035 beside the baseline
VM = vm_name(IMAGE)
ROOT = Path(__file__).resolve().parents[2]

# scenario -> (KB, candidate release date override, the lab's own calendar without these KBs)
SCENARIOS: dict[str, tuple[str, str | None, list[str] | None]] = {
    "oob-with-ssu": ("KB5070881", None, None),
    "dotnet": ("KB9900031", None, None),
    "after-calendar": ("KB5068966", "2027-01-12", None),
    "lab-calendar-without-kb": ("KB5070893", None, ["KB5070893"]),
}


def _calendar_without(folder: Path, kbs: list[str]) -> Path:
    data = yaml.safe_load((ROOT / "src" / "patchgate" / "data" / "hotpatch_calendar.yaml").read_text())
    for q in data["quarters"]:
        for key in ("hotpatches", "allowed_extras", "off_track", "oob"):
            q[key] = [r for r in q.get(key, []) if r["kb"] not in kbs]
    path = folder / "calendar.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    catalog = Catalog.load()
    root = tmp_path_factory.mktemp("calendar")

    def one(name: str) -> tuple[str, Run]:
        kb, released, without = SCENARIOS[name]
        behaviour = catalog.behaviour(kb)
        folder = root / name
        lab = cr.write_lab(folder, catalog, [IMAGE], name=f"cal-{name}")
        if without:
            lab.write_text(lab.read_text() + f"calendar: {_calendar_without(folder, without).name}\n")
        candidate = cr.write_candidate(folder / "candidate", behaviour, cr.target_build(catalog, behaviour, [IMAGE]))
        if released:
            data = yaml.safe_load(candidate.read_text())
            data["release_date"] = released
            candidate.write_text(yaml.safe_dump(data, sort_keys=False))
        return name, cr.run_validate(lab, candidate, folder / "out", pycache=root / "pycache")

    names = list(SCENARIOS)
    results = dict([one(names[0])])
    with ThreadPoolExecutor(max_workers=3) as pool:
        results.update(pool.map(one, names[1:]))
    return results


def track(run: Run) -> dict:
    return next(c for c in run.checks(VM) if c["invariant"] == "hotpatch.track")


def test_an_ssu_at_baseline_does_not_hide_kb5070881_leaving_the_track(runs: dict[str, Run]) -> None:
    run = runs["oob-with-ssu"]
    assert run.returncode == 1 and run.verdict(VM) == "block", run.explain(VM)
    assert track(run)["status"] == "failed" and "KB5070881" in track(run)["message"], run.explain(VM)


def test_a_dotnet_update_on_an_enrolled_machine_approves(runs: dict[str, Run]) -> None:
    run = runs["dotnet"]
    assert run.returncode == 0 and run.verdict(VM) == "approve", run.explain(VM)
    assert track(run)["status"] == "passed", run.explain(VM)


def test_a_candidate_after_the_calendars_last_month_is_inconclusive(runs: dict[str, Run]) -> None:
    run = runs["after-calendar"]
    assert run.returncode == 2 and run.gate["verdict"] == "inconclusive", run.explain(VM)
    check = track(run)
    assert check["status"] == "broken", run.explain(VM)
    assert "ends at 2026-12" in check["message"] and "patchgate calendar import" in check["message"]


def test_a_kb_the_labs_calendar_does_not_know_is_inconclusive_not_a_block(runs: dict[str, Run]) -> None:
    run = runs["lab-calendar-without-kb"]
    assert run.returncode == 2 and run.gate["verdict"] == "inconclusive", run.explain(VM)
    check = track(run)
    assert check["status"] == "broken" and "KB5070893" in check["message"], run.explain(VM)
    assert "calendar.yaml" in check["message"], check["message"]  # names the lab's calendar file
