"""Run ``patchgate validate`` as a user does and measure it: wall time, CPU of the whole process tree, lifecycles.

CPU comes from ``getrusage(RUSAGE_CHILDREN)`` around one child at a time, so it covers the validate process and
its pytest-xdist workers (user + system: time on a CPU, never time spent waiting for the lab).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.labs import ROOT
from bench.sampling import TreeSampler, twin_records

PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


@dataclass
class ValidateRun:
    lab: Path
    out: Path
    exit_code: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    gate: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    twin_cpu_s: float = 0.0  # what the twin's own processes (the simulated lab) used, out of cpu_s
    twin_pids: set[int] = field(default_factory=set)
    began_at: float = 0.0  # time.time() when the process was started, and when it had exited
    ended_at: float = 0.0
    sampler: TreeSampler | None = None  # the process tree's CPU over the run

    @property
    def harness_cpu_s(self) -> float:
        """The harness's CPU: the whole process tree without the simulated lab (a real lab spends its own)."""
        return self.cpu_s - self.twin_cpu_s

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    @property
    def verdict(self) -> str:
        return str(self.gate.get("verdict", "none"))

    def lifecycles(self) -> dict[str, float]:
        """Each VM's lifecycle span in seconds: start of its first step to the end of its last (the restore)."""
        spans = {}
        for vm in self.gate.get("vms", []):
            steps = vm.get("steps") or []
            if not steps:
                continue
            begin = dt.datetime.fromisoformat(steps[0]["started_at"])
            end = max(dt.datetime.fromisoformat(s["started_at"]) + dt.timedelta(seconds=s.get("duration_s") or 0)
                      for s in steps)
            spans[vm["name"]] = (end - begin).total_seconds()
        return spans

    def broken(self) -> int:
        return sum(1 for vm in self.gate.get("vms", []) if vm.get("error"))


def validate(lab: Path, candidate: str, out: Path, *pytest_args: str, timeout: float = 900) -> ValidateRun:
    """One ``patchgate validate`` with its own state directory (leases, ledgers)."""
    state = Path(tempfile.mkdtemp(prefix="patchgate-bench-state-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_")) and k != "CI"}
    env["PATCHGATE_STATE_DIR"] = str(state)
    cpu_dir = state / "twin-cpu"
    cpu_dir.mkdir()
    env["PATCHGATE_TWIN_CPU_DIR"] = str(cpu_dir)  # each twin process writes its CPU there when it closes
    argv = [PATCHGATE, "validate", "--lab", str(lab), "--candidate", candidate, "--out", str(out)]
    if pytest_args:
        argv += ["--", *pytest_args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began_at, began = time.time(), time.perf_counter()
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        with TreeSampler(proc.pid) as sampler:
            try:
                output = proc.communicate(timeout=timeout)[0]
            except subprocess.TimeoutExpired:
                proc.kill()  # as subprocess.run does
                raise
    wall = time.perf_counter() - began
    ended_at = began_at + wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gate_file = out / "gate.json"
    gate = json.loads(gate_file.read_text(encoding="utf-8")) if gate_file.is_file() else {}
    twin = twin_records(cpu_dir)
    return ValidateRun(lab=lab, out=out, exit_code=proc.returncode, wall_s=wall,
                       cpu_user_s=after.ru_utime - before.ru_utime, cpu_sys_s=after.ru_stime - before.ru_stime,
                       gate=gate, stdout=output, twin_cpu_s=sum(t["user_s"] + t["sys_s"] for t in twin.values()),
                       twin_pids=set(twin), began_at=began_at, ended_at=ended_at, sampler=sampler)
