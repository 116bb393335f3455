"""Posture capture: patchgate's one-pipeline capture on a long-lived pool versus one ``execute_ps`` per probe.

Both sides talk to the same twin WSMan endpoint (served from the twin's own process) with an injected round-trip
latency, so the only difference is how the probes travel. The naive side is what a first script usually does: for
each probe, ``pypsrp.client.Client.execute_ps(script)``, which opens a runspace pool, runs one pipeline and closes
the pool.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pypsrp.client import Client

from bench.labs import write_lab
from patchgate.config import load_lab
from patchgate.model.posture import AREAS
from patchgate.probes import probe_text
from patchgate.probes.batch import compose_capture, parse_capture
from patchgate.probes.parsers import parse_probe
from patchgate.remoting.psrp_remoting import PsrpRemoting
from patchgate.run.components import build_components

# The WS-Management and WinRS actions a PSRP client sends (MS-WSMV); the endpoint also counts other things
# (pipelines started, faults, refusals, receive time-outs, injected faults), which are not requests.
WSMAN_ACTIONS = frozenset({"Create", "Delete", "Get", "Put", "Enumerate", "Command", "Receive", "Send", "Signal"})


def wsman_requests(counters: dict[str, int]) -> int:
    return sum(n for key, n in counters.items() if key in WSMAN_ACTIONS)


def run(*, round_trip: float = 0.02, repeats: int = 5) -> dict[str, Any]:
    """Capture ``repeats`` times each way; return requests and wall time per capture (median)."""
    with tempfile.TemporaryDirectory(prefix="patchgate-bench-capture-") as tmp:
        lab = load_lab(write_lab(Path(tmp), "bench-capture", 1, latency={"wsman_round_trip": round_trip}))
        vm = lab.vms[0]
        components = build_components(lab, kind_catalogs=[], stop=threading.Event())
        try:
            hypervisor = components.hypervisor
            hypervisor.connect()
            hypervisor.revert(vm)
            hypervisor.power_on(vm)
            endpoint = hypervisor.wait_ready(vm, 30)
            credentials = components.secrets.remoting_credentials(vm)
            endpoints = components.handle.endpoints  # the VM's listener, in the twin's own process

            # patchgate: the pool is opened once per VM and reused by every capture of the run
            endpoints.reset_counters(vm.name)
            began = time.perf_counter()
            session = PsrpRemoting(lab.remoting.settings).open(vm.name, endpoint, credentials)
            connect_s = time.perf_counter() - began
            connect_requests = wsman_requests(endpoints.counters(vm.name))
            batched_s, batched_req = [], []
            try:
                for _ in range(repeats):
                    endpoints.reset_counters(vm.name)
                    began = time.perf_counter()
                    capture = parse_capture(session.run(compose_capture(), timeout=60), vm=vm.name)
                    batched_s.append(time.perf_counter() - began)
                    batched_req.append(wsman_requests(endpoints.counters(vm.name)))
                    assert capture.ok, capture.errors
            finally:
                session.close()

            # naive: one Client.execute_ps per probe; each opens and closes its own runspace pool
            password = credentials.password.get_secret_value()
            naive_s, naive_req = [], []
            for _ in range(repeats):
                endpoints.reset_counters(vm.name)
                began = time.perf_counter()
                client = Client("127.0.0.1", port=endpoint.port, username=credentials.username, password=password,
                                ssl=False, auth="basic", encryption="never", path="wsman")
                for area in AREAS:
                    output, _streams, had_errors = client.execute_ps(probe_text(area))
                    assert output and not had_errors, f"naive probe {area} failed"
                    parse_probe(area, output)  # the same parsing work the batched side does
                naive_s.append(time.perf_counter() - began)
                naive_req.append(wsman_requests(endpoints.counters(vm.name)))
        finally:
            components.close()

    batched = {"requests": statistics.median(batched_req), "wall_s": statistics.median(batched_s),
               "pool_open_requests": connect_requests, "pool_open_s": connect_s}
    naive = {"requests": statistics.median(naive_req), "wall_s": statistics.median(naive_s)}
    return {
        "round_trip_s": round_trip,
        "probes": len(AREAS),
        "repeats": repeats,
        "batched": batched,
        "naive": naive,
        "request_ratio": naive["requests"] / batched["requests"],
        "wall_ratio": naive["wall_s"] / batched["wall_s"],
        # even when the batched side pays for opening its pool on every capture
        "wall_ratio_cold": naive["wall_s"] / (batched["wall_s"] + connect_s),
    }
