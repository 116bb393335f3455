"""Where a run's overhead goes: before the first VM step, the lifecycles stretching, after the last step.

overhead = start-up + stretch + end, where
  * start-up = process start to the first step of any VM (imports, input checks, pytest collection, the lab's
    connection, leases);
  * stretch = the span of all VM steps (first start to last end) minus the ideal (the longest single-VM
    lifecycle): what running N VMs at once added to the lifecycles;
  * end = the last step's end to the process's exit (the gate, junit, Allure, the evidence manifest, the summary).

Every VM of a lab with equal latencies reaches the same step at once twice, and those moments hold most of the
stretch:
  * the baseline burst, from the first VM being ready to the last install starting (connect, preflight, settle,
    baseline capture, staging): the cores the harness and the simulated lab kept busy in it say what bounds it
    (one core for one Python process, the machine's core count for the whole tree);
  * the post phase, from a VM being back from its restart to its post capture (reconnect, the remoting check,
    settle, WSUS sync, post capture), shown for the VM that finished last. The VMs come back as far apart as the
    baseline burst sent them into their installs, and the checks of the VMs already captured run meanwhile.
``at_full_cores`` estimates the overhead left had the baseline burst kept every core busy with the CPU work it did
and had the last VM's post phase taken no longer than one VM's alone: the least a better schedule could reach
at this CPU cost.
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
    if ready and installs:
        begin, end = min(ready), max(installs)
        row["burst_s"] = end - begin
        if end - begin >= 0.2 and run.sampler is not None:  # shorter than a few samples says nothing about cores
            row["burst_harness_cores"] = run.sampler.cores_busy(begin, end, exclude=run.twin_pids)
            row["burst_lab_cores"] = run.sampler.cores_busy(begin, end, pids=run.twin_pids)
    last_steps = max((vm.get("steps") or [] for vm in run.gate.get("vms", [])),
                     key=lambda vm_steps: max(map(_end, vm_steps), default=0.0))
    ends = {s["name"]: _end(s) for s in last_steps}  # the last of each name
    if "wait_ready_after_reboot" in ends and "capture_post" in ends:
        row["post_s"] = ends["capture_post"] - ends["wait_ready_after_reboot"]
    return row


def at_full_cores(row: dict[str, float], single: dict[str, float], cores: int) -> float:
    """What ``row``'s overhead would lose had its baseline burst kept all ``cores`` busy with the CPU work it did
    (harness and lab; never shorter than one VM's burst alone, ``single``) and had its last VM's post phase taken
    no longer than one VM's alone."""
    saved = 0.0
    length, harness, lab = row.get("burst_s"), row.get("burst_harness_cores"), row.get("burst_lab_cores")
    if length is not None and harness is not None and lab is not None:
        saved += max(0.0, length - max(length * (harness + lab) / max(1, cores), single.get("burst_s", 0.0)))
    if "post_s" in row:
        saved += max(0.0, row["post_s"] - single.get("post_s", 0.0))
    return saved
