"""Control runs: a failure the same VM shows without the candidate is noise seen on the control, not a block.

The lab's own noise here is an image whose System log always shows a crash of W32Time (an SCM 7031 stamped far
ahead, so every capture sees it "since the install"): services.scm_failures fails with any candidate. Without a
control that blocks a good update; with `--control` the control run shows the same failure, so the check passes
and its message carries both failures. A real regression (a candidate that stops CryptSvc) still blocks.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import PATCHGATE, ROOT, target_build, write_candidate, write_lab

pytestmark = pytest.mark.slow

NOISY_IMAGE = {
    "name": "ws2025-std-member-always-crashing", "extends": "ws2025-std-member-oct2025",
    "description": "a member whose log always shows a W32Time crash (the lab's own noise)",
    "host": {"events+": [{"log_name": "System", "provider_name": "Service Control Manager", "id": 7031,
                          "level": "Error", "time_created": "2099-01-01T00:00:00Z", "properties": ["W32Time"],
                          "message": "The Windows Time service terminated unexpectedly."}]},
}


def _validate(tmp: Path, kb: str, *, control: bool) -> dict:
    catalog_dir = tmp / "catalog"
    (catalog_dir / "images").mkdir(parents=True, exist_ok=True)
    (catalog_dir / "images" / "noisy.yaml").write_text(yaml.safe_dump(NOISY_IMAGE, sort_keys=False), encoding="utf-8")
    catalog = Catalog.load([catalog_dir])
    behaviour = catalog.behaviour(kb)
    image = NOISY_IMAGE["name"]
    folder = tmp / f"{kb}-{'control' if control else 'plain'}"
    lab = write_lab(folder, catalog, [image], name="control-lab")
    candidate = write_candidate(folder / "candidate", behaviour, target_build(catalog, behaviour, [image]))
    out = folder / "out"
    env = dict(os.environ, PATCHGATE_STATE_DIR=str(folder / "state"))
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    command = [PATCHGATE, "validate", "--lab", str(lab), "--candidate", str(candidate), "--out", str(out),
               "--twin-catalog", str(catalog_dir), *(["--control"] if control else []), "--", "-p",
               "no:hypothesispytest"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    gate = json.loads((out / "gate.json").read_text(encoding="utf-8"))
    gate["_output"] = done.stdout[-3000:] + done.stderr[-2000:]
    return gate


def _check(gate: dict, invariant: str) -> dict:
    return next(c for c in gate["checks"] if c["invariant"] == invariant)


def test_noise_seen_on_the_control_does_not_block(tmp_path: Path) -> None:
    plain = _validate(tmp_path, "KB5070893", control=False)
    assert _check(plain, "services.scm_failures")["status"] == "failed", plain["_output"]
    controlled = _validate(tmp_path, "KB5070893", control=True)
    scm = _check(controlled, "services.scm_failures")
    assert scm["status"] == "passed", controlled["_output"]
    assert "noise seen on the control" in scm["message"] and scm["message"].count("W32Time") >= 2, scm["message"]


def test_a_regression_the_control_does_not_show_still_blocks(tmp_path: Path) -> None:
    gate = _validate(tmp_path, "KB9900001", control=True)  # stops CryptSvc
    assert gate["verdict"] == "block", gate["_output"]
    assert _check(gate, "services.auto_start_running")["status"] == "failed"
    assert _check(gate, "services.scm_failures")["status"] == "passed"  # the lab's own noise, seen on the control
