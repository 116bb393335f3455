"""Watch a process tree while a benchmark runs: every process's CPU seconds and resident memory, every 50 ms.

One sampler serves the staging benchmark (peak memory per process) and the parallel one (how many cores the
harness and the simulated lab kept busy during each phase of a run). Sampling reads /proc through psutil; it
shares the machine's cores with what it measures, so it looks for new descendants only every ``FIND_EVERY_S``
(finding them reads every process's /proc entry: about 4% of a core at every sample) and reads the ones it
knows at every sample (a few files each).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

INTERVAL_S = 0.05
FIND_EVERY_S = 0.5


@dataclass
class Sample:
    at: float  # time.time() of the sample
    cpu_s: dict[int, float] = field(default_factory=dict)  # pid -> user + system seconds so far


class TreeSampler:
    """Samples ``pid`` and all its descendants until the ``with`` block ends."""

    def __init__(self, pid: int, interval_s: float = INTERVAL_S) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peaks: dict[int, int] = {}  # pid -> highest resident set seen, bytes
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        processes: list[psutil.Process] = []
        found_at = 0.0
        while not self._stop.wait(self.interval_s):
            if time.monotonic() - found_at >= FIND_EVERY_S:
                try:
                    processes = [self.root, *self.root.children(recursive=True)]
                except psutil.Error:
                    return
                found_at = time.monotonic()
            sample = Sample(at=time.time())
            for process in processes:
                try:
                    with process.oneshot():
                        times, rss = process.cpu_times(), process.memory_info().rss
                except psutil.Error:
                    continue
                sample.cpu_s[process.pid] = times.user + times.system
                self.peaks[process.pid] = max(self.peaks.get(process.pid, 0), rss)
            self.samples.append(sample)

    def cores_busy(self, begin: float, end: float, pids: set[int] | None = None,
                   exclude: set[int] | frozenset[int] = frozenset()) -> float:
        """The average number of cores the chosen processes kept busy between two ``time.time()`` moments
        (the CPU they gained between the samples nearest those moments, over the time between the samples)."""
        first = min(self.samples, key=lambda s: abs(s.at - begin), default=None)
        last = min(self.samples, key=lambda s: abs(s.at - end), default=None)
        if first is None or last is None or last.at <= first.at:
            return 0.0
        chosen = [pid for pid in last.cpu_s if (pids is None or pid in pids) and pid not in exclude]
        gained = sum(last.cpu_s[pid] - first.cpu_s.get(pid, 0.0) for pid in chosen)
        return gained / (last.at - first.at)


def twin_records(folder: Path) -> dict[int, dict[str, float]]:
    """What each twin process wrote when it closed (``$PATCHGATE_TWIN_CPU_DIR``), by pid: its CPU and memory."""
    return {int(f.stem.split("-")[1]): json.loads(f.read_text(encoding="utf-8")) for f in folder.glob("twin-*.json")}
