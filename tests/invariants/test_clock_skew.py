"""Guests whose clocks are minutes off the controller's (both signs) get the same verdicts as guests that agree.

Everything a guest stamps (events, LastBootUpTime, WSUS sync times) is on its own clock; the engine moves the
install's time onto that clock with the offset it measures at each capture (docs/invariants.md, "Noise the checks
ignore"). A skew of 4 minutes is beyond the noise's ±90 s and still below the preflight's 300 s failure threshold.
Good updates must still approve, and the regressions whose evidence is time-filtered (events since the install,
restart evidence, the sync after the install) must still block with exactly their invariants.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import CatalogueRuns, vm_name

pytestmark = pytest.mark.slow

KBS = ("KB5070893", "KB5068966", "KB5073379",  # good updates (with and without a restart, a WSUS sync)
       "KB9900003", "KB9900005", "KB9900016", "KB9900020", "KB9900023", "KB9900026")  # time-filtered evidence


@pytest.mark.parametrize("skew", [240.0, -240.0])
def test_verdicts_hold_when_the_guests_clock_is_minutes_off(tmp_path: Path, skew: float) -> None:
    runs = CatalogueRuns(Catalog.load(), tmp_path, seed=21, clock_skew=skew)
    wrong = []
    behaviours = [runs.catalog.behaviour(kb) for kb in KBS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        finished = list(pool.map(runs.run_one, behaviours))
    for behaviour, run in zip(behaviours, finished):
        for image, expect in sorted(behaviour.expect.items()):
            vm = vm_name(image)
            if run.verdict(vm) != expect.verdict or run.failed(vm) != set(expect.fails):
                wrong.append(run.explain(vm))
    assert not wrong, "\n\n".join(wrong)
