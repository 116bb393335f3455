"""One lab run in its own process whose hypervisor records, from inside the VM lifecycle, who holds each VM.

Run by test_lease_contention.py as ``python recording.py SPEC_JSON``. The recording wraps the real
hypervisor the run builds (twin): at the lifecycle's first revert of a VM the run *enters* (it claims the
VM with an ``O_EXCL`` marker file; finding one means two holders, recorded as a violation), and when the
lifecycle marks the VM no longer in use after its restore revert the run *leaves*. Each stay is appended
as one ``O_APPEND`` line ``vm run enter_ns leave_ns`` with CLOCK_MONOTONIC nanoseconds (one clock for
every process on the machine), so the test can also check that no two stays on one VM overlap; ``walls.log``
holds the same stays on the wall clock, which Vault's lease history (its versions' ``created_time``) uses too.

This file imports only patchgate: it runs outside pytest.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _append(path: Path, text: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644)
    try:
        os.write(fd, text.encode())  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


class RecordingHypervisor:
    """The run's own hypervisor, plus the holder records; everything else passes through."""

    def __init__(self, inner: Any, run_id: str, shared: Path) -> None:
        self._inner = inner
        self._run_id = run_id
        self._shared = shared
        self._entered: dict[str, int] = {}
        self._entered_wall: dict[str, float] = {}  # the wall clock too, to compare with Vault's version history
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def revert(self, vm: Any) -> Any:
        with self._lock:
            first = vm.name not in self._entered
            if first:
                self._entered[vm.name] = time.monotonic_ns()
                self._entered_wall[vm.name] = time.time()
        if first:
            try:
                fd = os.open(self._shared / f"{vm.name}.holder", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, self._run_id.encode())
                os.close(fd)
            except FileExistsError:
                holder = (self._shared / f"{vm.name}.holder").read_text(errors="replace")
                _append(self._shared / "violations.log", f"{vm.name} {self._run_id} found {holder}\n")
        return self._inner.revert(vm)

    def mark_in_use(self, vm: Any, run_id: str | None) -> None:
        self._inner.mark_in_use(vm, run_id)
        if run_id is not None:
            return
        leave = time.monotonic_ns()
        marker = self._shared / f"{vm.name}.holder"
        if marker.is_file() and marker.read_text(errors="replace") == self._run_id:
            marker.unlink()
        leave_wall = time.time()
        with self._lock:
            enter = self._entered.get(vm.name, leave)
            enter_wall = self._entered_wall.get(vm.name, leave_wall)
        _append(self._shared / "intervals.log", f"{vm.name} {self._run_id} {enter} {leave}\n")
        _append(self._shared / "walls.log", f"{vm.name} {self._run_id} {enter_wall:.6f} {leave_wall:.6f}\n")


def main(spec: dict[str, Any]) -> int:
    from patchgate.run import labrun
    from patchgate.config import load_candidate, load_lab, resolve_candidate

    shared = Path(spec["shared"])
    run_id = spec["run_id"]
    real_build = labrun.build_components

    def build(lab: Any, **kwargs: Any) -> Any:
        components = real_build(lab, **kwargs)
        components.hypervisor = RecordingHypervisor(components.hypervisor, run_id, shared)
        return components

    labrun.build_components = build  # type: ignore[assignment]
    lab = load_lab(Path(spec["lab"]))
    candidate = load_candidate(resolve_candidate(spec["candidate"]))
    run = labrun.LabRun(lab, candidate, selection=labrun.RunSelection(vms=spec["vms"]), run_id=run_id)

    (shared / f"ready-{run_id}").touch()
    deadline = time.monotonic() + 120
    while not (shared / "go").exists():  # start together: the test creates 'go' when all are ready
        if time.monotonic() > deadline:
            print(json.dumps({"error": "no go signal"}))
            return 2
        time.sleep(0.01)
    try:
        run.start()
        observations = run.wait_all()
    finally:
        run.finish()
    print(json.dumps({name: {"error": str(obs.error) if obs.error else None, "restored": obs.restored,
                             "steps": [s.name for s in obs.steps]}
                      for name, obs in observations.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
