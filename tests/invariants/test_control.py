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
PAIR = "member-control"

NOISY_IMAGE = {
    "name": "ws2025-std-member-always-crashing", "extends": "ws2025-std-member-oct2025",
    "description": "a member whose log always shows a W32Time crash (the lab's own noise)",
    "host": {"events+": [{"log_name": "System", "provider_name": "Service Control Manager", "id": 7031,
                          "level": "Error", "time_created": "2099-01-01T00:00:00Z", "properties": ["W32Time"],
                          "message": "The Windows Time service terminated unexpectedly."}]},
}


def _validate(tmp: Path, kb: str, *, control: bool, paired: bool = False) -> dict:
    catalog_dir = tmp / "catalog"
    (catalog_dir / "images").mkdir(parents=True, exist_ok=True)
    (catalog_dir / "images" / "noisy.yaml").write_text(yaml.safe_dump(NOISY_IMAGE, sort_keys=False), encoding="utf-8")
    catalog = Catalog.load([catalog_dir])
    behaviour = catalog.behaviour(kb)
    image = NOISY_IMAGE["name"]
    folder = tmp / f"{kb}-{'control' if control else 'plain'}{'-paired' if paired else ''}"
    lab = write_lab(folder, catalog, [image], name="control-lab")
    if paired:  # the control runs on a spare VM with the same image, at the same time as the candidate's run
        data = yaml.safe_load(lab.read_text(encoding="utf-8"))
        data["control"] = {"mode": "reboot", "vm": "paired"}
        data["vms"][0]["control_pair"] = PAIR
        lab.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
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
    gate["_out"] = out
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


def test_a_control_on_a_paired_vm_runs_beside_the_candidate_and_shows_both_sides(tmp_path: Path) -> None:
    gate = _validate(tmp_path, "KB5070881", control=False, paired=True)  # restarts: the pair restarts too
    scm = _check(gate, "services.scm_failures")
    assert gate["verdict"] == "approve" and scm["status"] == "passed", gate["_output"]
    assert f"on the control (paired VM {PAIR})" in scm["message"] and scm["message"].count("W32Time") >= 2
    vm = json.loads(next((gate["_out"] / "vms").glob("*.json")).read_text(encoding="utf-8"))
    steps = {s["name"]: s for s in vm["steps"]}
    assert {"control_revert", "control_capture_baseline", "reboot", "control_capture_post"} <= set(steps)
    assert sum(s["name"] == "reboot" for s in vm["steps"]) == 2  # the candidate's restart, and the control's
    # concurrent, not after: the pair was reverted before the candidate's post capture began
    assert steps["control_revert"]["started_at"] < steps["capture_post"]["started_at"]
    assert sum(s["name"] == "restore" and s["ok"] for s in vm["steps"]) == 2  # both VMs restored


def test_a_regression_still_blocks_with_a_paired_control(tmp_path: Path) -> None:
    gate = _validate(tmp_path, "KB9900001", control=True, paired=True)  # stops CryptSvc; --control keeps paired
    assert gate["verdict"] == "block", gate["_output"]
    assert _check(gate, "services.auto_start_running")["status"] == "failed"
    assert _check(gate, "services.scm_failures")["status"] == "passed"
