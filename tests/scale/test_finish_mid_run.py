"""The first VM's checks may end the run while other VMs are still in their lifecycle (or closing their sessions
before their restore): finishing then waits for them and restores every VM."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from patchgate.config import Lab, load_candidate
from patchgate.run.labrun import LabRun

ROOT = Path(__file__).resolve().parents[2]


def _lab() -> Lab:
    vms = [{"name": f"finish-{i:02d}", "role": "member", "snapshot": "baseline-2025-10",
            "image": "ws2025-std-member-oct2025"} for i in range(4)]
    return Lab.model_validate({
        "name": "finish-mid-run",
        "hypervisor": {"kind": "twin", "settings": {"latency": {"revert": 0.2, "install": 0.5,
                                                                "wsman_round_trip": 0.02}}},
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never"}},
        "secrets": {"kind": "twin"},
        "vms": vms,
        "timeouts": {"ready": 30, "install": 60, "reboot": 30, "capture": 30},
    })


def test_finish_called_while_vms_prepare_restores_them_all(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path / "state"))
    run = LabRun(_lab(), load_candidate(ROOT / "candidates" / "KB5070893.yaml"), restore_when_captured=True)
    run.start()
    assert run.first_prepared(list(run.lifecycles), timeout=60) is not None
    finished = threading.Event()

    def finish_like_the_last_checks_teardown() -> None:
        run.finish()
        finished.set()

    thread = threading.Thread(target=finish_like_the_last_checks_teardown, daemon=True)
    thread.start()
    thread.join(timeout=60)
    if not finished.is_set():
        run.interrupt()
    assert finished.is_set(), "finish() did not return while VMs were still in their lifecycle"
    assert all(lc.obs.restored for lc in run.lifecycles.values())
    assert all(lc.obs.error is None for lc in run.lifecycles.values())
