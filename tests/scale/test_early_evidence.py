"""Evidence that is final before a VM's post capture (its baseline posture and install output) is written while
the VM is still in the lab, not in the rush at the end of the run when every VM's checks write their results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from scale.conftest import ROOT, Run


def _lab_with_a_slow_reboot(folder: Path) -> Path:
    lab = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    lab["name"] = "twin-slow-reboot"
    lab["hypervisor"]["settings"]["latency"] = {"revert": 0, "boot": 0, "install": 0, "reboot": 2,
                                                "wsman_round_trip": 0}
    path = folder / "twin-slow-reboot.yaml"
    path.write_text(yaml.safe_dump(lab, sort_keys=False), encoding="utf-8")
    return path


def _step_start(vm: dict, name: str) -> float:
    step = next(s for s in vm["steps"] if s["name"] == name)
    return dt.datetime.fromisoformat(step["started_at"]).timestamp()


def test_baseline_and_install_attachments_are_written_before_the_post_capture(run_validate, tmp_path: Path) -> None:
    run: Run = run_validate("early", "--lab", str(_lab_with_a_slow_reboot(tmp_path)), "--candidate", "KB5070881")
    gate = run.gate()
    assert gate["verdict"] == "block", run.log
    vms = {vm["name"]: vm for vm in gate["vms"]}
    referenced: set[str] = set()
    for container in run.allure_containers():
        if not container.get("name", "").startswith("lifecycle of "):
            continue
        vm = vms[container["name"].removeprefix("lifecycle of ")]
        attachments = {a["name"]: run.results / a["source"] for a in container["befores"][0]["attachments"]}
        referenced.update(path.name for path in attachments.values())
        post_capture = _step_start(vm, "capture_post")
        for early in ("baseline posture (JSON)", "install output"):
            assert attachments[early].stat().st_mtime < post_capture, (vm["name"], early)
        assert attachments["post-update posture (JSON)"].stat().st_mtime > post_capture, vm["name"]
    assert len(referenced) == 5 * len(vms)
    own = {a["source"] for result in run.allure_results() for a in result.get("attachments", [])
           if a["name"] == "check result"}  # each check's own result, one per check
    assert len(own) == len(run.allure_results())
    on_disk = {path.name for path in run.results.glob("*-attachment.*")}
    assert on_disk == referenced | own, ("every attachment is written once and referenced by its VM's lifecycle "
                                         "or is a check's own result")
