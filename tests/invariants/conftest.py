"""One catalogue run per test session: every behaviour with `expect` rows, run once however many pytest-xdist
workers read it (support/shared_runs.py: the first worker to ask runs the catalogue, the others read its results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.shared_runs import once_per_session

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import CatalogueRuns, Run


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="session")
def catalogue_runs(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> CatalogueRuns:
    def make(folder: Path) -> CatalogueRuns:
        runs = CatalogueRuns(catalog, folder)
        runs.run_all()
        return runs

    def save(runs: CatalogueRuns) -> dict[str, Any]:
        return {kb: {"kb": run.kb, "returncode": run.returncode, "output": run.output, "out_dir": str(run.out_dir)}
                for kb, run in runs.runs.items()}

    def load(entries: dict[str, Any]) -> CatalogueRuns:
        runs = CatalogueRuns(catalog, tmp_path_factory.getbasetemp())
        runs.runs = {kb: _read(entry) for kb, entry in entries.items()}
        return runs

    return once_per_session(tmp_path_factory, worker_id, "catalogue", make, save, load)


def _read(entry: dict[str, Any]) -> Run:
    out = Path(entry["out_dir"])
    gate_file = out / "gate.json"
    gate = json.loads(gate_file.read_text(encoding="utf-8")) if gate_file.is_file() else {}
    return Run(kb=entry["kb"], returncode=entry["returncode"], gate=gate, output=entry["output"], out_dir=out)
