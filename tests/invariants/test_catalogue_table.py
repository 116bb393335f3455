"""Every catalogue behaviour on every twin image it names gets the verdict Microsoft's documentation implies.

One `patchgate validate` per KB with all of its images as VMs of one generated lab (tests/invariants/conftest.py);
each (KB, image) row then checks that VM's own verdict and that exactly the declared invariants failed. The same
table is in docs/invariants.md, with sources.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from patchgate_twin.behaviours import INVARIANT_IDS
from patchgate_twin.catalog import Catalog
from tests.invariants import table
from tests.invariants.catalogue_runs import CatalogueRuns, vm_name

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "invariants.md"
CATALOG = Catalog.load()
CASES = [(b.kb, image) for b in CATALOG.behaviours() for image in sorted(b.expect)]


@pytest.mark.parametrize(("kb", "image"), CASES, ids=[f"{kb}-{image}" for kb, image in CASES])
def test_behaviour_on_image_gets_the_documented_verdict(catalogue_runs: CatalogueRuns, kb: str, image: str) -> None:
    expect = catalogue_runs.catalog.behaviour(kb).expect[image]
    run = catalogue_runs.runs[kb]
    vm = vm_name(image)
    assert run.checks(vm), f"{kb}: no check reported for {vm}\n{run.output[-3000:]}"
    assert run.verdict(vm) == expect.verdict, run.explain(vm)
    assert run.failed(vm) == set(expect.fails), run.explain(vm)
    if expect.verdict == "inconclusive":  # lab trouble names the VM and the step that broke
        broken = [c for c in run.checks(vm) if c["status"] == "broken"]
        assert broken and all(vm in c["message"] and c.get("step") for c in broken), run.explain(vm)


def test_the_run_verdict_is_the_worst_vm_verdict(catalogue_runs: CatalogueRuns) -> None:
    """The gate combines per-VM outcomes: any inconclusive VM makes the run inconclusive, else any block blocks."""
    order = ["approve", "block", "inconclusive"]
    for kb, run in catalogue_runs.runs.items():
        worst = max((run.verdict(vm_name(image)) for image in catalogue_runs.catalog.behaviour(kb).expect),
                    key=order.index)
        assert run.gate["verdict"] == worst, (kb, run.gate["reason"])
        assert run.returncode == {"approve": 0, "block": 1, "inconclusive": 2}[worst], (kb, run.output[-2000:])


# judged only on what WSUS offered (lab `install: {via: wsus}`); the catalogue's runs install packages, and
# tests/e2e/test_wsus_validate.py is the run that violates it (KB5070881 in the incident's offering window)
JUDGED_THROUGH_WSUS = {"wsus.offered"}


def test_every_invariant_has_a_behaviour_that_violates_it() -> None:
    tripped = {f for b in CATALOG.behaviours() for exp in b.expect.values() for f in exp.fails}
    assert tripped == set(INVARIANT_IDS) - JUDGED_THROUGH_WSUS


def test_docs_list_the_same_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert table.BEGIN in text and table.END in text, f"{DOC} lost its generated table markers"
    current = text[text.index(table.BEGIN):text.index(table.END) + len(table.END)]
    assert current == table.markdown(CATALOG), (
        f"{DOC} is out of date with the catalogue; regenerate with: .venv/bin/python -m tests.invariants.table")
