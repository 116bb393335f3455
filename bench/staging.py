"""``python -m bench.staging``: one real-size package to N twin VMs, pulled (``staging.source: harness``) against
pushed (``push``), in one run, beside the physical limit of this disk.

The package is generated in a temp folder (a stand-in header naming KB5070893, then zeros up to the size: a
sparse file, never committed) with a candidate file beside it. Each side is one ``patchgate validate`` of a twin
lab without simulated latency, so the wall time is staging and the run's own work. Measured per side: wall time,
CPU of the harness and of the twin's process (each twin process reports its own at exit), and the peak resident
memory of the harness's processes (sampled with psutil) and of the twin's process (its own ``ru_maxrss``).

The physical limit is what no way of staging can beat on this machine: reading and hashing the package once per
VM, plus writing one copy per VM (each copy ends on the twin's disk), measured the same way right before. A
baseline run with the shipped 185-byte stand-in gives what a validate costs without a package to move; the harness
CPU per GiB delivered is each side's CPU above that baseline.

Options: ``--mib 100,1024,2048`` (one package size after the other), ``--vms 8``, ``--sides pull,push``,
``--push-vms 2`` (push to fewer VMs than pull: pushing 1 GiB to 8 VMs takes most of an hour on a 2-core machine;
the table then also shows push at ``--vms`` VMs *extrapolated* from the measured side, linear in VMs above the
baseline, and says so), ``--no-doc``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml
from rich.console import Console
from rich.table import Table

from bench import machine
from bench.labs import ROOT, lab_document
from bench.markdown import md_table, update_doc
from bench.sampling import TreeSampler, twin_records

PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
KB = "KB5070893"
START = "<!-- bench:staging:start (written by python -m bench.staging) -->"
END = "<!-- bench:staging:end -->"
CHUNK = 1 << 20


def make_package(folder: Path, mib: int) -> tuple[Path, str]:
    """A stand-in the twin installs (its KB near the top), padded with zeros to ``mib`` MiB; returns its sha256."""
    path = folder / "windows11.0-kb5070893-x64.bench.msu"
    with path.open("wb") as handle:
        handle.write(f"patchgate bench stand-in\nkb: {KB}\n".encode())
        handle.truncate(mib * CHUNK)  # sparse: the zeros cost no disk until a VM writes its copy
    return path, _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(CHUNK):
            digest.update(data)
    return digest.hexdigest()


def write_candidate(folder: Path, package: Path, sha256: str) -> Path:
    data = yaml.safe_load((ROOT / "candidates" / f"{KB}.yaml").read_text(encoding="utf-8"))
    data["packages"] = [{"file": package.name, "sha256": sha256}]
    path = folder / f"{KB}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def physical_limit(package: Path, copies: int, folder: Path) -> float:
    """Seconds to read and hash the package ``copies`` times and write ``copies`` copies of it."""
    began = time.perf_counter()
    for index in range(copies):
        target = folder / f"copy-{index}"
        digest = hashlib.sha256()
        with package.open("rb") as source, target.open("wb") as sink:
            while data := source.read(CHUNK):
                digest.update(data)
                sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        target.unlink()
    return time.perf_counter() - began


@dataclass
class Side:
    source: str
    vms: int
    wall_s: float
    harness_cpu_s: float
    twin_cpu_s: float
    harness_peak_mib: float
    twin_peak_mib: float
    verdict: str
    exit_code: int


def run_side(work: Path, source: str, vms: int, candidate: Path, timeout: float, label: str = "") -> Side:
    folder = work / (label or source)
    folder.mkdir()
    lab = lab_document(f"bench-staging-{source}", vms)
    lab["staging"] = {"source": source}
    lab["timeouts"] = {**lab["timeouts"], "install": 3600, "stage": 3600}
    lab_path = folder / "lab.yaml"
    lab_path.write_text(yaml.safe_dump(lab, sort_keys=False), encoding="utf-8")
    state = folder / "state"
    cpu_dir = state / "twin-cpu"
    cpu_dir.mkdir(parents=True)
    env = {**os.environ, "PATCHGATE_STATE_DIR": str(state), "PATCHGATE_TWIN_CPU_DIR": str(cpu_dir),
           "PATCHGATE_PROGRESS": "off"}
    argv = [PATCHGATE, "validate", "--lab", str(lab_path), "--candidate", str(candidate), "--out",
            str(folder / "out")]
    before = psutil.Process().cpu_times()
    began = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with TreeSampler(process.pid) as sampler:
        code = process.wait(timeout=timeout)
    wall = time.perf_counter() - began
    after = psutil.Process().cpu_times()
    tree_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    twins = twin_records(cpu_dir)
    twin_cpu = sum(t["user_s"] + t["sys_s"] for t in twins.values())
    harness_peak = max((rss for pid, rss in sampler.peaks.items() if pid not in twins), default=0)
    twin_peak = max((t.get("maxrss_kib", 0) * 1024 for t in twins.values()), default=0)
    gate_file = folder / "out" / "gate.json"
    verdict = json.loads(gate_file.read_text(encoding="utf-8"))["verdict"] if gate_file.is_file() else "none"
    shutil.rmtree(state / "twin", ignore_errors=True)  # the VMs' copies of the package
    return Side(source=source, vms=vms, wall_s=wall, harness_cpu_s=tree_cpu - twin_cpu, twin_cpu_s=twin_cpu,
                harness_peak_mib=harness_peak / CHUNK, twin_peak_mib=twin_peak / CHUNK, verdict=verdict,
                exit_code=code)


def _row(size: str, what: str, side: dict[str, Any], limit: str, per_gib: str) -> list[str]:
    return [size, str(side["vms"]), what, f"{side['wall_s']:.1f} s", limit, f"{side['harness_cpu_s']:.1f} s",
            per_gib, f"{side['twin_cpu_s']:.1f} s", f"{side['harness_peak_mib']:.0f} MiB",
            f"{side['twin_peak_mib']:.0f} MiB"]


def extrapolated(side: dict[str, Any], base: dict[str, Any], vms: int) -> tuple[float, float]:
    """(wall, harness CPU) of ``side`` at ``vms`` VMs, linear in VMs above its baseline: an estimate, not a
    measurement (push is CPU-bound per byte on both ends, which grows with the VMs it copies to)."""
    scale = vms / side["vms"]
    return (base["wall_s"] + (side["wall_s"] - base["wall_s"]) * scale,
            base["harness_cpu_s"] + (side["harness_cpu_s"] - base["harness_cpu_s"]) * scale)


def table(result: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    baselines = result["baselines"]
    rows = [_row("-", f"baseline: the 185-byte stand-in, pulled ({base['verdict']})", base, "-", "-")
            for base in baselines.values()]
    for size in result["sizes"]:
        for side in size["sides"]:
            base = baselines[str(side["vms"])]
            gib = size["mib"] * side["vms"] / 1024
            per_gib = max(0.0, side["harness_cpu_s"] - base["harness_cpu_s"]) / gib
            limit = size["limits"][str(side["vms"])]
            rows.append(_row(f"{size['mib']} MiB", f"{side['source']} ({side['verdict']})", side,
                             f"{limit:.1f} s", f"{per_gib:.2f} s"))
            if side["vms"] != result["vms"]:
                wall, cpu = extrapolated(side, base, result["vms"])
                rows.append([f"{size['mib']} MiB", str(result["vms"]), f"{side['source']}: EXTRAPOLATED from "
                             f"the {side['vms']}-VM row, not measured", f"~{wall:.0f} s",
                             f"{size['limits'][str(result['vms'])]:.1f} s", f"~{cpu:.0f} s", "-", "-", "-", "-"])
    return ("Staging one package to twin VMs (no simulated latency)",
            ["package", "VMs", "way", "wall", "physical limit", "harness CPU", "harness CPU per GiB delivered "
             "(above the baseline)", "twin CPU (the lab)", "harness peak RSS", "twin peak RSS"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.staging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", default="1024", help="package sizes in MiB, comma-separated (default 1024)")
    parser.add_argument("--vms", type=int, default=8, help="twin VMs (default 8)")
    parser.add_argument("--sides", default="pull,push", help="pull, push or both (default pull,push)")
    parser.add_argument("--push-vms", type=int, default=0, help="VMs for the push side (default: --vms); fewer "
                        "makes the table add push at --vms VMs, extrapolated and marked so")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per side")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args(argv)
    sources = {"pull": "harness", "push": "push"}
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    fleet = {"pull": args.vms, "push": args.push_vms or args.vms}
    counts = sorted({fleet[side] for side in sides} | {args.vms})
    console = Console(width=max(120, Console().width))
    work = Path(tempfile.mkdtemp(prefix="patchgate-bench-staging-"))
    result: dict[str, Any] = {"machine": machine.describe(), "vms": args.vms, "baselines": {}, "sizes": []}
    try:
        for count in counts:
            console.print(f"baseline: the shipped stand-in, pulled by {count} VMs")
            result["baselines"][str(count)] = vars(run_side(work, "harness", count, ROOT / "candidates" /
                                                            f"{KB}.yaml", args.timeout, label=f"baseline-{count}"))
        for mib in (int(x) for x in args.mib.split(",") if x.strip()):
            folder = work / f"{mib}-mib"
            folder.mkdir()
            package, sha256 = make_package(folder, mib)
            candidate = write_candidate(folder, package, sha256)
            size: dict[str, Any] = {"mib": mib, "limits": {}, "sides": []}
            for count in counts:
                console.print(f"physical limit: {count} x (read + hash + write) of {mib} MiB")
                size["limits"][str(count)] = physical_limit(package, count, folder)
            for side in sides:
                console.print(f"{side}: {mib} MiB to {fleet[side]} VMs")
                size["sides"].append(vars(run_side(folder, sources[side], fleet[side], candidate, args.timeout,
                                                   label=f"{side}-{fleet[side]}")))
            package.unlink()
            result["sizes"].append(size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    title, columns, rows = table(result)
    rich_table = Table(title=title, title_justify="left")
    for column in columns:
        rich_table.add_column(column)
    for row in rows:
        rich_table.add_row(*row)
    console.print(rich_table)
    if not args.no_doc:
        m = result["machine"]
        body = (f"Measured on {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, load average at the start "
                f"{m.get('load_average')}.\n\n**{title}**\n\n" + md_table(columns, rows))
        update_doc(ROOT / "docs" / "performance.md", body, start=START, end=END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
