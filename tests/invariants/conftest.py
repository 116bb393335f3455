"""One catalogue run per test session: every behaviour with `expect` rows, run once however many pytest-xdist
workers read it (the first worker to ask runs the catalogue, the others wait for it and read its results)."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import CatalogueRuns, Run


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="session")
def catalogue_runs(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> CatalogueRuns:
    if worker_id == "master":  # one process: nobody to share with
        runs = CatalogueRuns(catalog, tmp_path_factory.mktemp("catalogue"))
        runs.run_all()
        return runs
    shared = tmp_path_factory.getbasetemp().parent / "catalogue"  # the folder every worker of this session sees
    shared.mkdir(exist_ok=True)
    index = shared / "runs.json"
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = CatalogueRuns(catalog, shared)
        if index.is_file():
            runs.runs = {kb: _read(entry) for kb, entry in json.loads(index.read_text(encoding="utf-8")).items()}
        else:
            runs.run_all()
            index.write_text(json.dumps({kb: _entry(run) for kb, run in runs.runs.items()}), encoding="utf-8")
    return runs


def _entry(run: Run) -> dict[str, object]:
    return {"kb": run.kb, "returncode": run.returncode, "output": run.output, "out_dir": str(run.out_dir)}


def _read(entry: dict) -> Run:
    out = Path(entry["out_dir"])
    gate_file = out / "gate.json"
    gate = json.loads(gate_file.read_text(encoding="utf-8")) if gate_file.is_file() else {}
    return Run(kb=entry["kb"], returncode=entry["returncode"], gate=gate, output=entry["output"], out_dir=out)
