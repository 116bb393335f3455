"""Two workers of one run never drive one VM: the second lab run's lease on it fails and the VM is broken there.

Workers of a pytest-xdist run share the run id, so this is the case to guard: two LabRuns with the same run id
in one process stand for two workers (the local leases are flocks, held per open file, so they exclude each
other inside one process exactly as across processes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from patchgate.config import Lab, load_candidate
from patchgate.errors import LeaseError
from patchgate.run.labrun import LabRun

ROOT = Path(__file__).resolve().parents[2]


def one_vm_lab() -> Lab:
    return Lab.model_validate({
        "name": "lease-twin",
        "hypervisor": {"kind": "twin"},
        "remoting": {"kind": "inprocess"},
        "secrets": {"kind": "twin"},
        "vms": [{"name": "shared-01", "role": "member", "snapshot": "baseline-2025-10",
                 "image": "ws2025-std-member-oct2025"}],
        "timeouts": {"ready": 1, "install": 60, "reboot": 30, "capture": 30},
    })


def test_second_worker_cannot_take_a_vm_the_first_holds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path))
    lab = one_vm_lab()
    candidate = load_candidate(ROOT / "candidates" / "KB5070893.yaml")
    first = LabRun(lab, candidate, run_id="20250101T000000Z-shared")
    second = LabRun(lab, candidate, run_id="20250101T000000Z-shared")
    try:
        first.start()
        assert first.observation("shared-01").error is None
        second.start()
        blocked = second.observation("shared-01")
        assert isinstance(blocked.error, LeaseError), blocked.error
        assert "shared-01" in str(blocked.error)
        assert not second.lifecycles["shared-01"].obs.steps  # it never touched the VM
    finally:
        second.finish()
        first.finish()
    assert first.lifecycles["shared-01"].obs.restored
    # once the first worker let go, the VM is free again
    third = LabRun(lab, candidate, run_id="20250101T000000Z-shared")
    try:
        third.start()
        assert third.observation("shared-01").error is None
    finally:
        third.finish()
