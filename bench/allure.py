"""Allure report generation for a big run: ``patchgate report`` on the 32-VM run's output (npm Allure 3)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.labs import ROOT

PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def run(out: Path, vms: int) -> dict[str, Any]:
    results = out / "allure-results"
    began = time.perf_counter()
    proc = subprocess.run([PATCHGATE, "report", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    wall = time.perf_counter() - began
    report = out / "report"
    return {"vms": vms, "exit_code": proc.returncode, "wall_s": wall,
            "results_files": len(list(results.glob("*"))) if results.is_dir() else 0,
            "results_bytes": _size(results), "report_bytes": _size(report),
            "report_files": len([p for p in report.rglob("*") if p.is_file()]) if report.is_dir() else 0,
            "summary_bytes": _size(out / "summary.html"),
            "output": (proc.stdout + proc.stderr)[-800:]}
