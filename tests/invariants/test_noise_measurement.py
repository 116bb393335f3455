"""The measurement behind docs/invariants.md "Noise the checks ignore": on noisy twins (noise: realistic) good
updates are not blocked, and every synthetic and documented regression still blocks with the same invariants as
on a quiet twin. Prints its tables (seeds included) rather than timing anything; slow (a few minutes).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import CatalogueRuns, Run, run_validate, target_build, vm_name, write_candidate, \
    write_lab

pytestmark = pytest.mark.slow

CATALOGUE_SEED = 11
GOOD_SEEDS = range(1001, 1031)  # 30 runs


def _good(catalog: Catalog) -> list[tuple[str, list[str]]]:
    """Microsoft updates on the images their documentation says they keep healthy (approve rows)."""
    out = []
    for b in catalog.behaviours():
        images = sorted(i for i, e in b.expect.items() if e.verdict == "approve")
        if images and not b.synthetic:
            out.append((b.kb, images))
    return out


def _good_run(catalog: Catalog, root: Path, seed: int, kb: str, images: list[str]) -> tuple[int, str, Run]:
    behaviour = catalog.behaviour(kb)
    folder = root / f"{kb}-{seed}"
    lab = write_lab(folder, catalog, images, name=f"good-{seed}", seed=seed)
    candidate = write_candidate(folder / "candidate", behaviour, target_build(catalog, behaviour, images))
    return seed, kb, run_validate(lab, candidate, folder / "out", pycache=root / "pycache")


def test_good_updates_are_not_blocked_on_noisy_twins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog.load()
    good = _good(catalog)
    assert good, "the catalogue has no approve rows for Microsoft updates"
    plan = [(seed, *good[n % len(good)]) for n, seed in enumerate(GOOD_SEEDS)]
    first = _good_run(catalog, tmp_path, *plan[0])  # fills the compiled-module cache the others share
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = [first, *pool.map(lambda p: _good_run(catalog, tmp_path, *p), plan[1:])]
    rows, blocked = [], []
    for seed, kb, run in results:
        images = dict(good)[kb]
        verdicts = {vm_name(i): run.verdict(vm_name(i)) for i in images}
        rows.append(f"| {seed} | {kb} | {len(images)} | {', '.join(sorted(set(verdicts.values())))} |")
        blocked += [f"{kb} seed {seed} on {vm}: {run.explain(vm)}" for vm, v in verdicts.items() if v != "approve"]
    with capsys.disabled():
        print("\n| seed | KB | VMs | verdicts |\n|---|---|---|---|\n" + "\n".join(rows))
    assert not blocked, "\n\n".join(blocked)


def test_regressions_block_with_the_same_invariants_on_a_noisy_twin(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog.load()
    runs = CatalogueRuns(catalog, tmp_path, seed=CATALOGUE_SEED).run_all()
    rows, missed = [], []
    for b in catalog.behaviours():
        for image, expect in sorted(b.expect.items()):
            run, vm = runs[b.kb], vm_name(image)
            got, fails = run.verdict(vm), run.failed(vm)
            same = got == expect.verdict and fails == set(expect.fails)
            rows.append(f"| {b.kb} | {image} | {expect.verdict} | {got} | {'yes' if same else 'NO'} |")
            if not same:
                missed.append(run.explain(vm))
    with capsys.disabled():
        print(f"\nseed {CATALOGUE_SEED}\n| KB | image | quiet (expected) | noisy | same invariants |\n|---|---|---|---|---|\n"
              + "\n".join(rows))
    assert not missed, "\n\n".join(missed)
