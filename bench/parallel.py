"""Parallel efficiency and harness CPU: validate 1, 4, 16 and 32 twin VMs with lab-like latencies.

Efficiency at N VMs = the longest single-VM lifecycle (each VM kind validated alone, revert to restore) divided
by the wall time of ``patchgate validate`` on N VMs (process start to exit, so start-up, collection, the gate,
junit and Allure writing all count against the harness). 1.0 would mean N VMs cost no more than the slowest one.

Each configuration runs ``runs`` times and the fastest run is kept (all wall times are recorded): on a shared
machine, noise only ever adds time, so the minimum is the steadiest estimate (as ``timeit`` advises). The ideal
is taken the same way.

Harness CPU per VM = (CPU of the N-VM run - CPU of a 1-VM run) / (N - 1): the marginal cost of one more VM,
user + system time of the whole process tree. It includes the twin's own work (the simulated hosts and their
WSMan endpoints run in the same process), so it is an upper bound on what the harness itself spends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.labs import SCALED_LATENCY, VM_KINDS, write_lab
from bench.validate import ValidateRun, validate

CANDIDATE = "KB5070881"  # SSU + LCU with a restart on every VM: the longest lifecycle the catalogue has


def _summary(run: ValidateRun, vms: int, workers: int) -> dict[str, Any]:
    spans = run.lifecycles()
    return {"vms": vms, "workers": workers, "wall_s": run.wall_s, "cpu_user_s": run.cpu_user_s,
            "cpu_sys_s": run.cpu_sys_s, "verdict": run.verdict, "exit_code": run.exit_code,
            "broken_vms": run.broken(), "longest_lifecycle_s": max(spans.values(), default=0.0),
            "shortest_lifecycle_s": min(spans.values(), default=0.0), "out": str(run.out)}


def _fastest(runs: int, attempt) -> tuple[ValidateRun, list[float]]:
    """The fastest of ``runs`` attempts (``attempt(i)`` runs one), and every attempt's wall time."""
    results = [attempt(i) for i in range(max(1, runs))]
    return min(results, key=lambda r: r.wall_s), [round(r.wall_s, 2) for r in results]


def run(work: Path, *, sizes: tuple[int, ...] = (1, 4, 16, 32), workers: tuple[int, ...] = (0, 2),
        latency: dict[str, float] | None = None, runs: int = 3, log=print) -> dict[str, Any]:
    latency = dict(latency or SCALED_LATENCY)
    singles = []
    for kind in VM_KINDS:  # each VM kind alone: the longest of these is the ideal wall time of any N
        lab = write_lab(work / "labs", f"bench-single-{kind[0]}", 1, latency=latency, kinds=(kind,))
        result, walls = _fastest(runs, lambda i: validate(lab, CANDIDATE, work / f"single-{kind[0]}-{i}", "-q"))
        singles.append(_summary(result, 1, 0) | {"kind": kind[0], "walls_s": walls})
        log(f"  1 VM ({kind[0]}): {result.wall_s:.1f}s wall, lifecycle {singles[-1]['longest_lifecycle_s']:.1f}s")
    ideal = max(s["longest_lifecycle_s"] for s in singles)
    single_cpu = min(s["cpu_user_s"] + s["cpu_sys_s"] for s in singles)

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
            cpu = result.cpu_user_s + result.cpu_sys_s
            row["cpu_per_vm_s"] = (cpu - single_cpu) / (size - 1) if size > 1 else None
            rows.append(row)
            log(f"  {size} VMs{f' -n {count}' if count else ''}: {result.wall_s:.1f}s wall, efficiency "
                f"{row['efficiency']:.2f}, verdict {result.verdict}, {result.broken()} broken")
    return {"candidate": CANDIDATE, "latency_s": latency, "runs_per_configuration": runs, "single_vm": singles,
            "longest_single_vm_lifecycle_s": ideal, "single_vm_cpu_s": single_cpu, "runs": rows}
