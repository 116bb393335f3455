"""Where a run's overhead goes: before the first VM step, the lifecycles stretching, after the last step.

overhead = start-up + stretch + end, where
  * start-up = process start to the first step of any VM (imports, input checks, pytest collection, the lab's
    connection, leases);
  * stretch = the span of all VM steps (first start to last end) minus the ideal (the longest single-VM
    lifecycle): what running N VMs at once added to the lifecycles;
  * end = the last step's end to the process's exit (the gate, junit, Allure, the evidence manifest, the summary).

The baseline burst is the moment every VM of a lab with equal latencies reaches at once: from the first VM being
ready to the last install starting (connect, preflight, settle, baseline capture, staging). The cores the harness
and the simulated lab kept busy there say what bounds it: one core for one Python process, the machine's core
count for the whole tree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bench.validate import ValidateRun


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _steps(run: ValidateRun) -> list[dict[str, Any]]:
    return [step for vm in run.gate.get("vms", []) for step in vm.get("steps") or []]


def _end(step: dict[str, Any]) -> float:
    return _at(step["started_at"]) + (step.get("duration_s") or 0.0)


def breakdown(run: ValidateRun, ideal_s: float) -> dict[str, float]:
    steps = _steps(run)
    if not steps or not run.began_at:
        return {}
    first = min(_at(s["started_at"]) for s in steps)
    last = max(_end(s) for s in steps)
    row = {"startup_s": first - run.began_at, "stretch_s": (last - first) - ideal_s, "end_s": run.ended_at - last}
    ready = [_end(s) for s in steps if s["name"] == "wait_ready"]
    installs = [_at(s["started_at"]) for s in steps if s["name"] == "install"]
    if ready and installs and run.sampler is not None:
        begin, end = min(ready), max(installs)
        row["burst_s"] = end - begin
        if end - begin >= 0.2:  # shorter than a few samples says nothing about cores
            row["burst_harness_cores"] = run.sampler.cores_busy(begin, end, exclude=run.twin_pids)
            row["burst_lab_cores"] = run.sampler.cores_busy(begin, end, pids=run.twin_pids)
    return row
