"""The fault matrix's Hyper-V rows: each fault of the twin's Hyper-V host, one run of the suites on a Hyper-V
lab (hypervisor.kind hyperv, guests: twin), and the same four promises as every twin fault
(support.reliability.keeps_every_promise): inconclusive, never approve; every VM at its snapshot; every lease
released; every output written and verified."""

from __future__ import annotations

import concurrent.futures as cf
import subprocess

import pytest
from support.reliability import Run, hyperv_lab_data, keeps_every_promise, make_run

from patchgate_twin.faults import HYPERV_FAULTS

# fault -> the step gate.json must name for the faulty VM
EXPECTED_STEP: dict[str, str] = {
    "checkpoint-missing": "revert",
    "restore-fails": "revert",
    "heartbeat-never-ok": "wait_ready",
    "no-kvp-ip": "wait_ready",
    "host-unreachable": "connect",  # the run cannot start: every VM is broken, none is touched
    "psdirect-refused": "connect",  # on a PowerShell Direct lab: the guest's session cannot be opened
}
PARALLEL = 3


def test_every_hyperv_fault_is_in_the_matrix() -> None:
    assert set(EXPECTED_STEP) == set(HYPERV_FAULTS)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Run, subprocess.CompletedProcess[str]]]:
    base = tmp_path_factory.mktemp("hyperv-faults")
    runs = {fault: make_run(base, fault, hyperv_lab_data("hv-" + fault, faults=[fault],
                                                         psdirect=fault.startswith("psdirect-")))
            for fault in EXPECTED_STEP}

    def run(fault: str) -> subprocess.CompletedProcess[str]:
        return runs[fault].suites()

    with cf.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        done = dict(zip(runs, pool.map(run, runs)))
    return {fault: (runs[fault], proc) for fault, proc in done.items()}


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(EXPECTED_STEP))
def test_hyperv_fault_keeps_every_promise(matrix, fault: str) -> None:
    run, proc = matrix[fault]
    started = fault != "host-unreachable"
    keeps_every_promise(run, proc, EXPECTED_STEP[fault], touched=started, ledger_written=started,
                        named="vm-f" if started else "host hv-01")
