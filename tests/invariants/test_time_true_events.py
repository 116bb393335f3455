"""The twin writes events when they happen, and the settle window waits for what a crash writes after the install.

A candidate whose install makes W32Time crash 1000 Windows seconds later (5 s on the twin's fast clock) blocks on
services.scm_failures only because the post capture waits `timeouts.settle_min` (1400 Windows seconds, 7 s): with
`settle_min: 0` the post capture is taken before the crash and does not see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import Run, run_validate, target_build, vm_name, write_candidate, write_lab

pytestmark = pytest.mark.slow

IMAGE = "ws2025-std-member-oct2025"
LATE_CRASH = {
    "description": "a crash written after the install",
    "behaviours": [{
        "kb": "KB9912001", "title": "Synthetic regression: W32Time crashes 1000 s after the install",
        "classification": "synthetic", "synthetic": True, "restart": "never",
        "effects": [{"add_event": {"provider_name": "Service Control Manager", "id": 7031, "level": "Error",
                                   "offset_seconds": 1000, "properties": ["Windows Time", "1"],
                                   "message": "The Windows Time service terminated unexpectedly."}}],
    }],
}


def _run(tmp: Path, settle_min: float) -> Run:
    catalog_dir = tmp / "catalog"
    (catalog_dir / "catalog").mkdir(parents=True, exist_ok=True)
    (catalog_dir / "catalog" / "late.yaml").write_text(yaml.safe_dump(LATE_CRASH, sort_keys=False), encoding="utf-8")
    catalog = Catalog.load([catalog_dir])
    behaviour = catalog.behaviour("KB9912001")
    folder = tmp / f"settle-{settle_min:g}"
    lab = write_lab(folder, catalog, [IMAGE], name="late-crash")
    data = yaml.safe_load(lab.read_text(encoding="utf-8"))
    data["timeouts"]["settle_min"] = settle_min
    lab.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    candidate = write_candidate(folder / "candidate", behaviour, target_build(catalog, behaviour, [IMAGE]))
    return run_validate(lab, candidate, folder / "out", extra=["--twin-catalog", str(catalog_dir)])


def test_the_settle_window_waits_for_a_crash_written_after_the_install(tmp_path: Path) -> None:
    vm = vm_name(IMAGE)
    waited = _run(tmp_path, settle_min=1400)
    assert waited.failed(vm) == {"services.scm_failures"}, waited.explain(vm)
    assert "Windows Time" in waited.message(vm, "services.scm_failures")
    hurried = _run(tmp_path, settle_min=0)
    assert hurried.verdict(vm) == "approve", hurried.explain(vm)  # captured before the crash happened
