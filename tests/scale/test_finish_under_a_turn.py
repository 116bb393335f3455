"""The test loop holds a turn around each check, and the last check's teardown ends the run: finishing a run
while holding a turn must not wait on VMs that need turns themselves (a VM still in its lifecycle, or closing its
session before its restore). It gives the turn back while it waits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from patchgate.config import Lab, load_candidate
from patchgate.run.labrun import LabRun
from patchgate.turns import CHECKS_RANK, TURNS

ROOT = Path(__file__).resolve().parents[2]


def _lab() -> Lab:
    vms = [{"name": f"turn-{i:02d}", "role": "member", "snapshot": "baseline-2025-10",
            "image": "ws2025-std-member-oct2025"} for i in range(4)]
    return Lab.model_validate({
        "name": "turns-at-finish",
        "hypervisor": {"kind": "twin", "settings": {"latency": {"revert": 0.2, "install": 0.5,
                                                                "wsman_round_trip": 0.02}}},
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never"}},
        "secrets": {"kind": "twin"},
        "vms": vms,
        "timeouts": {"ready": 30, "install": 60, "reboot": 30, "capture": 30},
    })


def test_finish_called_while_holding_a_turn_does_not_deadlock(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path / "state"))
    run = LabRun(_lab(), load_candidate(ROOT / "candidates" / "KB5070893.yaml"), restore_when_captured=True)
    run.start()
    assert run.first_prepared(list(run.lifecycles), timeout=60) is not None
    finished = threading.Event()

    def finish_like_the_last_checks_teardown() -> None:
        with TURNS.taken(rank=CHECKS_RANK):  # VMs still in the lab, or closing their sessions, need turns
            run.finish()
        finished.set()

    thread = threading.Thread(target=finish_like_the_last_checks_teardown, daemon=True)
    thread.start()
    thread.join(timeout=60)
    if not finished.is_set():
        run.interrupt()
    assert finished.is_set(), "finish() waited on VMs while holding the turn they needed"
    assert all(lc.obs.restored for lc in run.lifecycles.values())
    assert all(lc.obs.error is None for lc in run.lifecycles.values())
