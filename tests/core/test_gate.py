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
