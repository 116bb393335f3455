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


def test_a_prepare_that_had_not_begun_when_the_run_finished_never_begins(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    """Ctrl-C while VMs still queue behind the lab's limit (or between a VM's bookkeeping and its submission):
    finish calls their prepare off, so none reverts a VM after the run's restore, and the ledger ends clean."""
    from patchgate.run.labrun import PrepareJob
    from patchgate.run.ledger import read_ledger

    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path / "state"))
    lab = _lab().model_copy(update={"limits": _lab().limits.model_copy(update={"total": 1})})
    run = LabRun(lab, load_candidate(ROOT / "candidates" / "KB5070893.yaml"))
    run.start()  # one VM at a time: three of the four queue behind the first
    run.interrupt()
    run.finish()
    called_off = [lc for lc in run.lifecycles.values()
                  if lc.obs.error is not None and "finished before this VM's lifecycle began" in str(lc.obs.error)]
    assert len(called_off) >= 2, [str(lc.obs.error) for lc in run.lifecycles.values()]
    assert all(lc.prepared.is_set() for lc in run.lifecycles.values())  # nobody waits for their observation

    late = PrepareJob(called_off[0])
    assert late.call_off()  # the bookkeeping was done, the submission never happened
    assert late() is None  # and had it happened after all, it would do nothing

    ledger = read_ledger(next((tmp_path / "state" / "runs").glob("*.jsonl")))
    assert ledger.ended and not ledger.dirty_vms
    assert all(not lc.obs.steps for lc in called_off)  # not one step, no revert among them
