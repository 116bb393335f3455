"""``python -m bench``: run the benchmarks, print their tables, write bench/results.json and docs/performance.md.

Options: ``--only capture,burst,parallel,allure``, ``--sizes 1,4,16,32``, ``--workers 0,2`` (0 = one process).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import allure as allure_bench
from bench import burst, capture, machine, parallel, targets
from bench.labs import ROOT
from bench.markdown import render_markdown, update_doc

RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "performance.md"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="capture,burst,parallel,allure", help="comma-separated benchmarks to run")
    parser.add_argument("--sizes", type=_ints, default=(1, 8, 32, 64), help="VM counts (default 1,8,32,64)")
    parser.add_argument("--workers", type=_ints, default=(0, 2),
                        help="pytest-xdist worker counts to try per size; 0 = one process (default 0,2)")
    parser.add_argument("--repeats", type=int, default=5, help="captures per side in the capture benchmark")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs per parallel configuration; the fastest is kept (default 1: a run at real-lab "
                        "latencies takes minutes)")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (printed at the end)")
    return parser.parse_args(argv)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = {x.strip() for x in args.only.split(",") if x.strip()}
    console = Console(width=max(120, Console().width))
    results: dict[str, Any] = {"machine": machine.describe(),
                               "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    console.print(f"[bold]patchgate bench[/] on {results['machine']['cores']} cores, "
                  f"{results['machine']['ram_gib']} GiB RAM, Python {results['machine']['python']}")
    work = Path(tempfile.mkdtemp(prefix="patchgate-bench-"))
    began = time.perf_counter()
    try:
        if "capture" in chosen:
            console.print("posture capture: batched pool vs one execute_ps per probe (20 ms round trip)")
            results["capture"] = capture.run(round_trip=0.02, repeats=args.repeats)
        if "burst" in chosen:
            console.print("one VM's baseline burst: CPU per step, harness and lab (no simulated latency)")
            results["burst"] = burst.run(repeats=args.repeats * 8)
        if "parallel" in chosen or "allure" in chosen:
            console.print(f"harness cost: {', '.join(map(str, args.sizes))} VMs at real-lab latencies (scaled)")
            results["parallel"] = parallel.run(work, sizes=args.sizes, workers=args.workers, runs=args.runs,
                                               log=lambda line: console.print(line, highlight=False))
        if "allure" in chosen and results.get("parallel"):
            biggest = max(results["parallel"]["runs"], key=lambda r: (r["vms"], -r["workers"]))
            console.print(f"Allure report for {biggest['vms']} VMs")
            results["allure"] = allure_bench.run(Path(biggest["out"]), biggest["vms"])
    finally:
        results["duration_s"] = time.perf_counter() - began
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["targets"] = targets.judge(results)

    for title, columns, rows in tables(results):
        console.print(_table(title, columns, rows))
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"results: {RESULTS}")
    if not args.no_doc:
        update_doc(DOC, render_markdown(results, tables(results)))
        console.print(f"table:   {DOC}")
    if args.keep:
        console.print(f"runs:    {work}")
    return 0 if all(t["ok"] for t in results["targets"]) else 1


def tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    out: list[tuple[str, list[str], list[list[str]]]] = []
    cap = results.get("capture")
    if cap:
        b, n = cap["batched"], cap["naive"]
        out.append((f"Posture capture ({cap['probes']} probes, {cap['round_trip_s'] * 1000:g} ms round trip, "
                    f"median of {cap['repeats']})",
                    ["way", "WSMan requests", "wall per capture"],
                    [["patchgate (one pipeline on an open pool)", f"{b['requests']:g}", f"{b['wall_s'] * 1000:.0f} ms"],
                     ["naive (execute_ps per probe)", f"{n['requests']:g}", f"{n['wall_s'] * 1000:.0f} ms"],
                     ["ratio", f"{cap['request_ratio']:.1f}x", f"{cap['wall_ratio']:.1f}x"],
                     ["patchgate opening its pool (once per VM)", f"{b['pool_open_requests']:g}",
                      f"{b['pool_open_s'] * 1000:.0f} ms"]]))
    par = results.get("parallel")
    if par:
        rows = []
        for r in par["runs"]:
            rows.append([str(r["vms"]), f"-n {r['workers']}" if r["workers"] else "1 process",
                         f"{r['wall_s']:.1f} s", " / ".join(f"{w:.1f}" for w in r.get("walls_s", [])) or "-",
                         f"{r['longest_lifecycle_s']:.1f} s", f"{r['overhead_s']:.1f} s", f"{r['efficiency']:.3f}",
                         f"{r['harness_cpu_s']:.1f} s", f"{r['cpu_per_vm_s']:.3f} s", f"{r['twin_cpu_s']:.1f} s",
                         f"{r['verdict']} ({r['broken_vms']} broken)"])
        lat = ", ".join(f"{k} {v:g}s" for k, v in par["latency_s"].items())
        out.append((f"Harness cost of validating {par['candidate']} (latency: {lat}; longest single-VM lifecycle "
                    f"{par['longest_single_vm_lifecycle_s']:.1f} s; fastest of {par.get('runs_per_configuration', 1)} "
                    "runs each)",
                    ["VMs", "how", "wall", "every run (s)", "longest VM lifecycle", "overhead", "efficiency",
                     "harness CPU", "harness CPU per VM", "twin CPU (the lab)", "verdict"], rows))
    if par and any(r.get("breakdown") for r in par["runs"]):
        out.append(((f"Where the overhead goes (bench/breakdown.py; cores: average busy during the baseline burst, "
                     f"harness + lab, of {results['machine']['cores']}; post phase: the last VM's, from back after "
                     "its restart to its post capture; at full cores: had the burst kept every core busy with the "
                     "same CPU work and the last post phase been as short as one VM's alone)"),
                    ["VMs", "how", "start-up", "lifecycles stretched", "end", "baseline burst", "cores",
                     "post phase", "overhead at full cores", "efficiency at full cores"],
                    [_breakdown_row(r) for r in par["runs"] if r.get("breakdown")]))
    out += _burst_tables(results)
    rep = results.get("allure")
    if rep:
        out.append((f"Allure report for {rep['vms']} VMs (patchgate report)",
                    ["wall", "results", "report", "summary.html", "exit"],
                    [[f"{rep['wall_s']:.1f} s", f"{rep['results_files']} files, {rep['results_bytes'] / 1e6:.1f} MB",
                      f"{rep['report_files']} files, {rep['report_bytes'] / 1e6:.1f} MB",
                      f"{rep['summary_bytes'] / 1e3:.0f} kB", str(rep["exit_code"])]]))
    if results.get("targets"):
        out.append(("Targets", ["target", "measured", "result"],
                    [[t["target"], t["measured"], "pass" if t["ok"] else "FAIL"] for t in results["targets"]]))
    return out


def _burst_tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    cost = results.get("burst")
    if not cost:
        return []

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    def total(label: str, steps: list[dict[str, Any]]) -> list[str]:
        return [label, f"{sum(s['requests'] for s in steps):.3g}", ms(sum(s["harness_cpu_s"] for s in steps)),
                ms(sum(s["lab_cpu_s"] for s in steps)), ms(sum(s["wall_s"] for s in steps))]

    steps = cost["steps"]
    rows = [[s["step"], f"{s['requests']:.3g}", ms(s["harness_cpu_s"]), ms(s["lab_cpu_s"]), ms(s["wall_s"])]
            for s in steps]  # a mean: a look now and then needs a second Receive
    rows += [total("before the install", [s for s in steps if s["before_install"]]), total("one VM's burst", steps)]
    out = [((f"One VM's baseline burst, step by step (bench/burst.py; {cost['candidate']} on one twin VM, no "
             f"simulated latency; mean of {cost['repeats']} calls, of {cost['installs']} for the install)"),
            ["step", "WSMan requests", "harness CPU", "lab CPU", "wall"], rows)]
    runs = (results.get("parallel") or {}).get("runs", [])
    measured = {(r["vms"], r["workers"]): r.get("breakdown", {}).get("burst_s") for r in runs}
    workers = sorted({w for _, w in measured}) or [0]
    sizes = sorted({vms for vms, _ in measured if vms > 1}) or [32, 64]

    def how(w: int) -> str:
        return f"-n {w}" if w else "1 process"

    columns = ["VMs ready at once"]
    for w in workers:
        columns += [f"floor, {how(w)}", f"measured, {how(w)}"]
    floor_rows = []
    for vms in sizes:
        row = [str(vms)]
        for w in workers:
            seen = measured.get((vms, w))
            row += [f"{burst.floor_s(cost, vms, w):.1f} s", f"{seen:.1f} s" if seen is not None else "-"]
        floor_rows.append(row)
    out.append(((f"The shortest baseline burst that cost allows ({cost['cores']} cores; an estimate from the steps "
                 "before the install, see bench/burst.py) and the burst measured above"), columns, floor_rows))
    return out


def _breakdown_row(run: dict[str, Any]) -> list[str]:
    b = run["breakdown"]

    def seconds(key: str) -> str:
        return f"{b[key]:.1f} s" if key in b else "-"

    harness, lab = b.get("burst_harness_cores"), b.get("burst_lab_cores")
    cores = f"{harness:.2f} + {lab:.2f}" if harness is not None and lab is not None else "-"
    full = run.get("full_cores_overhead_s")
    return [str(run["vms"]), f"-n {run['workers']}" if run["workers"] else "1 process", seconds("startup_s"),
            seconds("stretch_s"), seconds("end_s"), seconds("burst_s"), cores, seconds("post_s"),
            f"{full:.1f} s" if full is not None else "-",
            f"{run['full_cores_efficiency']:.3f}" if full is not None else "-"]


if __name__ == "__main__":
    sys.exit(main())
