"""In one process every VM goes through its lifecycle at once: a VM stuck in its install does not hold back the
lifecycles of the VMs collected after it (they are captured and restored before it is given up on), and once it
is given up on, its checks are broken while the others' pass (pytest runs the checks in collection order)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from scale.conftest import ROOT, Run

HUNG = "ws25-hp-01"  # first in the lab file, so its checks come first in collection order


def _lab_with_a_hung_install(folder: Path) -> Path:
    lab = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    lab["name"] = "twin-hung"
    lab["timeouts"] = {**(lab.get("timeouts") or {}), "install": 4}
    for vm in lab["vms"]:
        if vm["name"] == HUNG:
            vm["faults"] = ["install-hangs"]
    path = folder / "twin-hung.yaml"
    path.write_text(yaml.safe_dump(lab, sort_keys=False), encoding="utf-8")
    return path


def _ended(step: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(step["started_at"]) + dt.timedelta(seconds=step["duration_s"])


def test_ready_vms_are_captured_and_restored_while_a_slow_vm_still_installs(run_validate, tmp_path: Path) -> None:
    run: Run = run_validate("readiness", "--lab", str(_lab_with_a_hung_install(tmp_path)),
                            "--candidate", "KB5070893")
    gate = run.gate()
    assert gate["verdict"] == "inconclusive", run.log  # the hung VM is broken: lab trouble never approves
    steps = {vm["name"]: {step["name"]: step for step in vm["steps"]} for vm in gate["vms"]}
    hung_given_up = _ended(steps[HUNG]["install"])
    assert not steps[HUNG]["install"]["ok"], steps[HUNG]["install"]
    healthy = [name for name in steps if name != HUNG]
    assert healthy and all(_ended(steps[name]["capture_post"]) <= hung_given_up for name in healthy), steps
    results = run.allure_results()
    by_vm: dict[str, list[dict]] = {}
    for result in results:
        vm = next(p["value"].strip("'") for p in result["parameters"] if p["name"] == "vm_name")
        by_vm.setdefault(vm, []).append(result)
    assert all(r["status"] in ("passed", "skipped") for vm in healthy for r in by_vm[vm]), run.log
    assert {r["status"] for r in by_vm[HUNG]} == {"broken"}, run.log
