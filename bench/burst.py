"""What one VM's baseline burst costs each side, and the shortest burst that cost allows for N VMs here.

The baseline burst (bench/breakdown.py) is every step between a VM being ready and its install running: connect,
preflight, a settle look, the baseline capture, staging and the install's start. This benchmark runs those steps
on one twin VM, one at a time (revert, power on and wait between repeats, not counted), through the engine's
public functions, and counts the CPU each side spends on each: the harness's whole process (its content server,
which the VM downloads the package from, included) and the twin's own processes (the simulated lab).

From that cost follows a floor for N VMs that become ready at once. The harness's lifecycle threads share one
Python interpreter, which runs one thread at a time, so its part takes at least N x its CPU per VM; and the
machine runs both sides on its cores, so the burst takes at least N x (harness + lab CPU per VM) / cores. The floor
is the larger of the two: an estimate, not a measurement, and a little high, since without latency the install's
end (a minute later in a real run) is counted with its start. The parallel runs' *baseline burst* column is what
the burst really took.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.capture import _requests
from bench.labs import ROOT, write_lab
from patchgate.config import load_candidate, load_lab
from patchgate.doctor.preflight import run_preflight
from patchgate.probes.batch import compose_capture, parse_capture
from patchgate.remoting.sources import package_source
from patchgate.remoting.staging import stage_and_install
from patchgate.run.components import build_components

CANDIDATE = "KB5070881"
STEPS = ("connect", "preflight", "settle look", "baseline capture", "stage and install")


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # a helper of the twin that ended: its CPU is gone with it
            continue
        total += times.user + times.system
    return total


def run(*, repeats: int = 20) -> dict[str, Any]:
    """Each burst step ``repeats`` times on one twin VM without simulated latency; the mean per step (the lab's
    CPU comes from the kernel's per-process counters, in 10 ms ticks: only a mean over many repeats resolves a
    step of a few milliseconds)."""
    candidate = load_candidate(ROOT / "candidates" / f"{CANDIDATE}.yaml")
    samples: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in STEPS}
    with tempfile.TemporaryDirectory(prefix="patchgate-bench-burst-") as tmp:
        lab = load_lab(write_lab(Path(tmp), "bench-burst", 1))
        vm = lab.vms[0]
        components = build_components(lab, kind_catalogs=[], stop=threading.Event())
        packages = package_source(lab, "bench-burst", components.secrets)
        try:
            hypervisor = components.hypervisor
            hypervisor.connect()
            twin = psutil.Process().children(recursive=True)  # the twin's processes, started by the build
            endpoints = components.handle.endpoints
            credentials = components.secrets.remoting_credentials(vm)
            for _ in range(repeats):
                hypervisor.revert(vm)
                hypervisor.power_on(vm)
                endpoint = hypervisor.wait_ready(vm, 60)
                holder: dict[str, Any] = {}

                def measure(name: str, step: Callable[[], object]) -> None:
                    endpoints.reset_counters(vm.name)
                    harness, lab_cpu, began = time.process_time(), _cpu(twin), time.perf_counter()
                    step()
                    samples[name].append((time.process_time() - harness, _cpu(twin) - lab_cpu,
                                          time.perf_counter() - began, _requests(endpoints.counters(vm.name))))

                def connect() -> None:
                    holder["session"] = components.remoting.open(vm.name, endpoint, credentials)

                def capture(areas: list[str] | None) -> Callable[[], object]:
                    script = compose_capture(areas=areas) if areas else compose_capture()
                    return lambda: parse_capture(holder["session"].run(script, timeout=60), vm=vm.name)

                measure("connect", connect)
                try:
                    measure("preflight", lambda: run_preflight(holder["session"], candidate, timeout=60))
                    measure("settle look", capture(["services"]))
                    measure("baseline capture", capture(None))
                    measure("stage and install", lambda: stage_and_install(
                        holder["session"], candidate, timeout=600, source=packages, stage_timeout=600))
                finally:
                    holder["session"].close()
        finally:
            stop = getattr(packages, "stop", None)
            if stop is not None:
                stop()
            components.close()
    steps = [{"step": name, "harness_cpu_s": statistics.fmean(s[0] for s in samples[name]),
              "lab_cpu_s": statistics.fmean(s[1] for s in samples[name]),
              "wall_s": statistics.fmean(s[2] for s in samples[name]),
              "requests": statistics.median(s[3] for s in samples[name])} for name in STEPS]
    return {"candidate": CANDIDATE, "repeats": repeats, "cores": os.cpu_count() or 1, "steps": steps,
            "harness_cpu_per_vm_s": sum(s["harness_cpu_s"] for s in steps),
            "lab_cpu_per_vm_s": sum(s["lab_cpu_s"] for s in steps)}


def floor_s(burst: dict[str, Any], vms: int) -> float:
    """The shortest baseline burst ``vms`` VMs ready at once can have on this machine (see the module's text)."""
    harness, lab = burst["harness_cpu_per_vm_s"], burst["lab_cpu_per_vm_s"]
    return vms * max(harness, (harness + lab) / burst["cores"])
