"""The lab file's limits hold while every VM runs its lifecycle at once: measured inside the twin.

The twin counts how many reverts, installs and captures are in flight at any moment (and the progress callback
how many lifecycles are between their first step and their post capture); with eight VMs and a little simulated
latency, unlimited concurrency would exceed every limit, so a maximum reaching its limit shows both that the VMs do
run together and that the harness stops them at the lab's bound.
"""

from __future__ import annotations

import threading
from collections import Counter
from functools import wraps
from pathlib import Path

import pytest

from patchgate.run.settle import looks_in
from patchgate.config import Lab, load_candidate
from patchgate.run.labrun import LabRun
from patchgate_twin.lab import TwinLab
from patchgate_twin.shell_impl import TwinShell

ROOT = Path(__file__).resolve().parents[2]
KINDS = [("hotpatch-member", "ws2025-dc-hotpatch-oct2025"), ("wsus-server", "ws2025-dc-wsus-oct2025"),
         ("member", "ws2025-std-member-oct2025"), ("hotpatch-member", "ws2025-azure-edition-oct2025")]
LIMITS = {"total": 6, "revert": 2, "install": 3, "capture": 2}


class InFlight:
    """Current and highest number of calls inside each instrumented operation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def enter(self, kind: str) -> None:
        with self.lock:
            self.now[kind] += 1
            self.calls[kind] += 1
            self.peak[kind] = max(self.peak[kind], self.now[kind])

    def leave(self, kind: str) -> None:
        with self.lock:
            self.now[kind] -= 1

    def wrap(self, kind: str, func):
        @wraps(func)
        def counted(*args, **kwargs):
            self.enter(kind)
            try:
                return func(*args, **kwargs)
            finally:
                self.leave(kind)

        return counted


def lab(vm_count: int, limits: dict[str, int]) -> Lab:
    vms = [{"name": f"lim-{i:02d}", "role": KINDS[i % 4][0], "snapshot": "baseline-2025-10",
            "image": KINDS[i % 4][1]} for i in range(vm_count)]
    return Lab.model_validate({
        "name": "limits",
        # counted in this process: the twin's hosts stay here (own_process false), where the counters can see them
        "hypervisor": {"kind": "twin", "settings": {"latency": {"revert": 0.2, "install": 1.0,
                                                                "wsman_round_trip": 0.03},
                                                    "own_process": False}},
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never",
                                                  "read_timeout": 30, "operation_timeout": 20}},
        "secrets": {"kind": "twin"},
        "vms": vms,
        "limits": limits,
        "timeouts": {"ready": 30, "install": 60, "reboot": 30, "capture": 30},
    })


@pytest.fixture
def in_flight(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InFlight:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path / "state"))
    counts = InFlight()
    monkeypatch.setattr(TwinLab, "revert", counts.wrap("revert", TwinLab.revert))
    monkeypatch.setattr(TwinShell, "_install", counts.wrap("install", TwinShell._install))
    monkeypatch.setattr(TwinShell, "_capture", counts.wrap("capture", TwinShell._capture))
    return counts


def run_lab(the_lab: Lab, counts: InFlight) -> LabRun:
    candidate = load_candidate(ROOT / "candidates" / "KB5070893.yaml")
    active: set[str] = set()

    def progress(vm: str, step: str, state: str) -> None:  # lifecycles between revert and post capture
        with counts.lock:
            if step == "revert" and state == "start":
                active.add(vm)
            elif (step == "capture_post" and state in ("ok", "fail")) or state == "fail":
                active.discard(vm)
            counts.peak["total"] = max(counts.peak["total"], len(active))

    run = LabRun(the_lab, candidate, progress=progress)
    try:
        run.start()
        observations = run.wait_all()
    finally:
        run.finish()
    broken = {name: str(o.error) for name, o in observations.items() if o.error is not None}
    assert not broken, broken
    assert all(lc.obs.restored for lc in run.lifecycles.values())
    return run


def test_every_limit_is_honoured_and_reached(in_flight: InFlight) -> None:
    run = run_lab(lab(8, LIMITS), in_flight)
    assert in_flight.calls["revert"] == 16  # first revert and restore of each VM
    # baseline and post capture of each VM, plus the settle window's looks (each a small capture)
    looks = sum(looks_in(step.detail) for lc in run.lifecycles.values() for step in lc.obs.steps
                if step.name.startswith("settle"))
    assert in_flight.calls["install"] == 8 and in_flight.calls["capture"] == 16 + looks
    for kind, limit in LIMITS.items():
        assert in_flight.peak[kind] <= limit, f"{kind}: {in_flight.peak[kind]} in flight, limit {limit}"
    # the VMs really ran together (eight VMs, limits below eight): the bounds were reached, not just respected
    assert in_flight.peak["revert"] == LIMITS["revert"]
    assert in_flight.peak["total"] == LIMITS["total"]
    assert in_flight.peak["install"] >= 2  # installs overlap (how many depends on when the VMs get there)


def test_a_limit_of_one_serialises_that_operation(in_flight: InFlight) -> None:
    run_lab(lab(4, {"total": 4, "revert": 1, "install": 1, "capture": 4}), in_flight)
    assert in_flight.peak["revert"] == 1
    assert in_flight.peak["install"] == 1
    assert in_flight.peak["total"] > 1  # the other steps still overlap
