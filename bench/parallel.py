"""What the harness costs a real lab: validate 1, 8, 32 and 64 twin VMs at real-lab latencies (scaled).

Overhead at N VMs = the wall time of ``patchgate validate`` (process start to exit: start-up, collection, the
gate, junit and Allure writing all count) minus the longest single-VM lifecycle (each VM kind validated alone,
revert to restore): what the harness adds on top of the slowest VM. Efficiency = that lifecycle / the wall time;
1.0 would mean N VMs cost no more than the slowest one.

Harness CPU = user + system time of the whole process tree minus what the twin's own processes used (they play
the lab's machines, which on a real lab spend their own CPU); per VM = harness CPU / N.

Where the overhead goes (start-up, the lifecycles stretching, the end), the cores busy while every VM
reaches the same step at once, and the overhead had those moments kept every core busy: bench/breakdown.py.

Each configuration runs ``runs`` times and the fastest run is kept (all wall times are recorded): on a shared
machine, noise only ever adds time, so the minimum is the steadiest estimate (as ``timeit`` advises).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.breakdown import at_full_cores, breakdown
from bench.labs import SCALED_LATENCY, VM_KINDS, write_lab
from bench.validate import ValidateRun, validate

CANDIDATE = "KB5070881"  # SSU + LCU with a restart on every VM: the longest lifecycle the catalogue has


def _summary(run: ValidateRun, vms: int, workers: int) -> dict[str, Any]:
    spans = run.lifecycles()
    return {"vms": vms, "workers": workers, "wall_s": run.wall_s, "cpu_user_s": run.cpu_user_s,
            "cpu_sys_s": run.cpu_sys_s, "twin_cpu_s": run.twin_cpu_s, "harness_cpu_s": run.harness_cpu_s,
            "verdict": run.verdict, "exit_code": run.exit_code,
            "broken_vms": run.broken(), "longest_lifecycle_s": max(spans.values(), default=0.0),
            "shortest_lifecycle_s": min(spans.values(), default=0.0), "out": str(run.out)}


def _fastest(runs: int, attempt) -> tuple[ValidateRun, list[float]]:
    """The fastest of ``runs`` attempts (``attempt(i)`` runs one), and every attempt's wall time."""
    results = [attempt(i) for i in range(max(1, runs))]
    return min(results, key=lambda r: r.wall_s), [round(r.wall_s, 2) for r in results]


def run(work: Path, *, sizes: tuple[int, ...] = (1, 8, 32, 64), workers: tuple[int, ...] = (0, 2),
        latency: dict[str, float] | None = None, runs: int = 1, log=print) -> dict[str, Any]:
    latency = dict(latency or SCALED_LATENCY)
    singles = []
    for kind in VM_KINDS:  # each VM kind alone: the longest of these is the ideal wall time of any N
        lab = write_lab(work / "labs", f"bench-single-{kind[0]}", 1, latency=latency, kinds=(kind,))
        result, walls = _fastest(runs, lambda i: validate(lab, CANDIDATE, work / f"single-{kind[0]}-{i}", "-q"))
        singles.append(_summary(result, 1, 0) | {"kind": kind[0], "walls_s": walls})
        singles[-1]["breakdown"] = breakdown(result, singles[-1]["longest_lifecycle_s"])
        log(f"  1 VM ({kind[0]}): {result.wall_s:.1f}s wall, lifecycle {singles[-1]['longest_lifecycle_s']:.1f}s")
    ideal = max(s["longest_lifecycle_s"] for s in singles)
    alone = {key: min(s["breakdown"].get(key, 0.0) for s in singles) for key in ("burst_s", "post_s")}  # the best

    rows = []
    for size in sizes:
        for count in workers:
            if count and size < 2 * count:
                continue  # xdist with fewer VMs than two per worker only adds worker start-up
            lab = write_lab(work / "labs", f"bench-{size}", size, latency=latency)
            args = ["-q"] + (["-n", str(count)] if count else [])
            result, walls = _fastest(runs, lambda i: validate(lab, CANDIDATE, work / f"run-{size}-n{count}-{i}",
                                                              *args))
            row = _summary(result, size, count) | {"walls_s": walls}
            row["efficiency"] = ideal / result.wall_s
            row["overhead_s"] = result.wall_s - ideal
            row["cpu_per_vm_s"] = result.harness_cpu_s / size
            row["breakdown"] = breakdown(result, ideal)
            row["full_cores_overhead_s"] = row["overhead_s"] - at_full_cores(row["breakdown"], alone,
                                                                             os.cpu_count() or 1)
            row["full_cores_efficiency"] = ideal / (ideal + row["full_cores_overhead_s"])
            rows.append(row)
            log(f"  {size} VMs{f' -n {count}' if count else ''}: {result.wall_s:.1f}s wall, overhead "
                f"{row['overhead_s']:.1f}s, efficiency {row['efficiency']:.3f}, harness CPU "
                f"{row['cpu_per_vm_s']:.3f}s/VM, verdict {result.verdict}, {result.broken()} broken")
    return {"candidate": CANDIDATE, "latency_s": latency, "runs_per_configuration": runs, "single_vm": singles,
            "longest_single_vm_lifecycle_s": ideal, "runs": rows}
