"""What one VM's baseline burst costs each side, and the shortest burst that cost allows for N VMs here.

The baseline burst (bench/breakdown.py) runs from the first VM being ready to the last install starting: every VM
connects, runs the preflight, takes a settle look and the baseline capture, then stages and starts its install.
This benchmark runs those steps on one twin VM through the engine's public functions and counts the CPU each side
spends on each: the harness's whole process (its content server, which the VM downloads the package from,
included) and the twin's own processes (the simulated lab). The kernel counts a process's CPU in 10 ms ticks, so
each step is repeated back to back and measured as a whole; the install, which needs a fresh VM each time, is
measured one revert at a time and averaged.

From that cost follows an estimate of the shortest burst N VMs ready at once can have. The last install cannot
start before every VM has connected, passed its preflight and taken its settle look and baseline, so that work
(the steps before the install) is the least the burst must hold. A Python interpreter runs one thread at a time,
so one harness process needs at least N x its CPU for it (with W pytest-xdist workers, N/W x); the machine runs
both sides on its cores, so at least N x (harness + lab CPU) / cores. The larger of the two is the floor: an
estimate, not a measurement (xdist's own work is left out). The parallel runs' *baseline burst* is what the burst
really took.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.capture import wsman_requests
from bench.labs import ROOT, write_lab
from patchgate.config import load_candidate, load_lab
from patchgate.doctor.preflight import run_preflight
from patchgate.probes.batch import compose_capture, parse_capture
from patchgate.remoting.sources import package_source
from patchgate.remoting.staging import stage_and_install
from patchgate.run.components import build_components

CANDIDATE = "KB5070881"
BEFORE_INSTALL = ("connect", "preflight", "settle look", "baseline capture")
INSTALL = "stage and install"
OPEN_AT_ONCE = 10  # runspace pools held open at once while connects are measured


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # a helper of the twin that ended: its CPU is gone with it
            continue
        total += times.user + times.system
    return total


class _Burst:
    """The burst's steps on one VM, each measured: harness CPU, lab CPU, wall and WSMan requests per call."""

    def __init__(self, components: Any, vm: Any, packages: Any, twin: list[psutil.Process]) -> None:
        self.components, self.vm, self.packages, self.twin = components, vm, packages, twin
        self.candidate = load_candidate(ROOT / "candidates" / f"{CANDIDATE}.yaml")
        self.totals: dict[str, list[float]] = {}  # step -> [calls, harness s, lab s, wall s, requests]

    def measure(self, name: str, step: Callable[[], Any], calls: int = 1) -> list[Any]:
        endpoints = self.components.handle.endpoints
        endpoints.reset_counters(self.vm.name)
        harness, lab, began = time.process_time(), _cpu(self.twin), time.perf_counter()
        values = [step() for _ in range(calls)]
        spent = (calls, time.process_time() - harness, _cpu(self.twin) - lab, time.perf_counter() - began,
                 wsman_requests(endpoints.counters(self.vm.name)))
        self.totals[name] = [a + b for a, b in zip(self.totals.get(name, [0.0] * 5), spent)]
        return values

    def ready(self) -> Any:
        """Revert, power on and wait (not counted); the VM's endpoint."""
        hypervisor = self.components.hypervisor
        hypervisor.revert(self.vm)
        hypervisor.power_on(self.vm)
        return hypervisor.wait_ready(self.vm, 60)

    def open(self, endpoint: Any) -> Any:
        credentials = self.components.secrets.remoting_credentials(self.vm)
        return self.components.remoting.open(self.vm.name, endpoint, credentials)

    def before_install(self, repeats: int) -> None:
        endpoint = self.ready()
        for _ in range(0, repeats, OPEN_AT_ONCE):  # closed in between: WinRM caps the shells a user may hold
            for opened in self.measure("connect", lambda: self.open(endpoint), OPEN_AT_ONCE):
                opened.close()
        session = self.open(endpoint)  # the other steps' pool (its opening is counted above)
        try:
            self.measure("preflight", lambda: run_preflight(session, self.candidate, timeout=60), repeats)
            for name, script in (("settle look", compose_capture(areas=["services"])),
                                 ("baseline capture", compose_capture())):
                self.measure(name, lambda script=script: parse_capture(session.run(script, timeout=60),
                                                                       vm=self.vm.name), repeats)
        finally:
            session.close()

    def install(self) -> None:
        session = self.open(self.ready())
        try:
            self.measure(INSTALL, lambda: stage_and_install(session, self.candidate, timeout=600,
                                                            source=self.packages, stage_timeout=600))
        finally:
            session.close()

    def steps(self) -> list[dict[str, Any]]:
        rows = []
        for name in (*BEFORE_INSTALL, INSTALL):
            calls, harness, lab, wall, requests = self.totals[name]
            rows.append({"step": name, "harness_cpu_s": harness / calls, "lab_cpu_s": lab / calls,
                         "wall_s": wall / calls, "requests": requests / calls,
                         "before_install": name in BEFORE_INSTALL})
        return rows


def run(*, repeats: int = 40) -> dict[str, Any]:
    """Each step ``repeats`` times on one twin VM without simulated latency; the mean per call."""
    with tempfile.TemporaryDirectory(prefix="patchgate-bench-burst-") as tmp:
        lab = load_lab(write_lab(Path(tmp), "bench-burst", 1))
        components = build_components(lab, kind_catalogs=[], stop=threading.Event())
        packages = package_source(lab, "bench-burst", components.secrets)
        try:
            components.hypervisor.connect()
            twin = psutil.Process().children(recursive=True)  # the twin's processes, started by the build
            burst = _Burst(components, lab.vms[0], packages, twin)
            burst.before_install(repeats)
            for _ in range(max(1, repeats // 4)):  # a revert each: fewer
                burst.install()
        finally:
            stop = getattr(packages, "stop", None)
            if stop is not None:
                stop()
            components.close()
    steps = burst.steps()
    early = [s for s in steps if s["before_install"]]
    return {"candidate": CANDIDATE, "repeats": repeats, "installs": max(1, repeats // 4),
            "cores": os.cpu_count() or 1, "steps": steps,
            "harness_cpu_per_vm_s": sum(s["harness_cpu_s"] for s in steps),
            "lab_cpu_per_vm_s": sum(s["lab_cpu_s"] for s in steps),
            "harness_cpu_before_install_s": sum(s["harness_cpu_s"] for s in early),
            "lab_cpu_before_install_s": sum(s["lab_cpu_s"] for s in early)}


def floor_s(burst: dict[str, Any], vms: int, workers: int = 0) -> float:
    """The shortest baseline burst ``vms`` VMs ready at once can have here, in one process (``workers`` 0) or
    over that many pytest-xdist workers (see the module's text)."""
    harness, lab = burst["harness_cpu_before_install_s"], burst["lab_cpu_before_install_s"]
    return vms * max(harness / max(1, workers), (harness + lab) / burst["cores"])
