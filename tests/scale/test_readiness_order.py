"""In one process each VM's checks run as soon as that VM is ready: a VM stuck in its install does not hold back
the checks of the VMs collected after it (they finish before it is given up on)."""

from __future__ import annotations

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


def test_ready_vms_are_checked_while_a_slow_vm_still_installs(run_validate, tmp_path: Path) -> None:
    run: Run = run_validate("readiness", "--lab", str(_lab_with_a_hung_install(tmp_path)),
                            "--candidate", "KB5070893")
    gate = run.gate()
    assert gate["verdict"] == "inconclusive", run.log  # the hung VM is broken: lab trouble never approves
    results = run.allure_results()
    by_vm: dict[str, list[dict]] = {}
    for result in results:
        vm = next(p["value"].strip("'") for p in result["parameters"] if p["name"] == "vm_name")
        by_vm.setdefault(vm, []).append(result)
    healthy = [vm for vm in by_vm if vm != HUNG]
    assert healthy and all(r["status"] in ("passed", "skipped") for vm in healthy for r in by_vm[vm]), run.log
    hung_checks_start = min(r["start"] for r in by_vm[HUNG])
    healthy_checks_end = max(r["stop"] for vm in healthy for r in by_vm[vm])
    assert healthy_checks_end <= hung_checks_start, (healthy_checks_end, hung_checks_start)
    assert {r["status"] for r in by_vm[HUNG]} == {"broken"}, run.log
