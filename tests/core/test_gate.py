"""The verdict rules: broken beats failed beats passed, and silence never approves."""

from __future__ import annotations

import pytest

from patchgate.evidence.gate import Check, decide


def check(status: str, vm: str = "vm1", invariant: str = "hotpatch.track") -> Check:
    return Check(vm=vm, area=invariant.split(".")[0], invariant=invariant, status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize("statuses, verdict", [
    (["passed", "passed"], "approve"),
    (["passed", "waived"], "approve"),
    (["passed", "failed"], "block"),
    (["failed", "broken"], "inconclusive"),
    (["passed", "broken"], "inconclusive"),
    (["skipped", "skipped"], "inconclusive"),
    ([], "inconclusive"),
    (["waived"], "approve"),
])
def test_verdict_rules(statuses, verdict):
    assert decide([check(s) for s in statuses])[0] == verdict


def test_block_reason_names_invariant_and_vm():
    verdict, reason = decide([check("passed"), check("failed", vm="ws25-hp-01")])
    assert verdict == "block"
    assert "hotpatch.track on ws25-hp-01" in reason


def test_inconclusive_reason_names_the_broken_step():
    broken = check("broken", vm="ws25-mbr-01")
    broken.step = "wait_ready"
    verdict, reason = decide([check("failed"), broken])
    assert verdict == "inconclusive"
    assert "ws25-mbr-01 at step wait_ready" in reason


def _kept_line(capsys: pytest.CaptureFixture[str], tmp_path, hypervisor: str, endpoint: dict) -> str:
    from patchgate.cli.verdict import print_verdict

    gate = {"verdict": "block", "candidate": {"kb": "KB5070881"}, "reason": "r", "checks": [],
            "lab": {"name": "lab", "hypervisor": hypervisor},
            "vms": [{"name": "vm1", "kept": True, "endpoint": endpoint}]}
    print_verdict(gate, tmp_path / "gate.json")
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  KEPT"))


def test_a_kept_vm_is_shown_in_the_words_of_its_lab_kind(capsys, tmp_path):
    """The twin's kind says where its disk is; vSphere's VM is reached at its endpoint; a run folder of a kind
    that is not installed here still prints its VM's endpoint."""
    assert "twin disk is kept in the state folder" in _kept_line(capsys, tmp_path, "twin", {"address": "127.0.0.1"})
    assert "reach it at vc-vm1:5986" in _kept_line(capsys, tmp_path, "vsphere", {"hostname": "vc-vm1", "port": 5986})
    assert "reach it at 10.0.0.9" in _kept_line(capsys, tmp_path, "xen", {"address": "10.0.0.9"})
