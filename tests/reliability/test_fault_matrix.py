"""The fault matrix: every twin fault, one run of the suites each, and the four promises for every one.

Promises: (1) the verdict is inconclusive, never approve, and gate.json and the Allure results name the failing VM
and step (Allure status broken, the "lab trouble" category); (2) every VM is back at its snapshot (the twin's
durable disks say so, and the run ledger has nothing dirty); (3) every lease is released; (4) every output file is
written and `patchgate verify` accepts the evidence manifest.

The runs are independent (each its own state directory and lab), so a module fixture starts them a few at a time
and each parametrized test checks one fault's run. Each is `pytest suites --lab ... --candidate ...` in a process
of its own (support.suite_runs), the child `patchgate validate` starts; the command's own lines and exit codes are
tested in tests/e2e.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import subprocess

import pytest
from support.openbao import OpenBao, start_openbao
from support.reliability import FAULTY, VMS, Run, keeps_every_promise, lab_data, make_run

from patchgate_twin.faults import FAULTS

# fault -> the step gate.json must name for the faulty VM
EXPECTED_STEP: dict[str, str] = {
    "never-ready": "wait_ready",
    "no-ip": "wait_ready",
    "unreachable": "connect",
    "revert-fails": "revert",
    "install-fails": "install",
    "install-hangs": "install",
    "reboot-never-returns": "wait_ready_after_reboot",
    "wsman-reset": "capture_baseline",
    "wsman-fault": "capture_baseline",
    "auth-failure": "connect",
    "malformed-probe": "probe:hotpatch",  # the capture step names the probe that broke
    "vault-unreachable": "connect",
    "vault-sealed": "connect",
    "lease-held": "lease",
    "worker-dies": "worker",
    "pending-reboot": "preflight",
    "disk-full": "preflight",
    "constrained-language": "preflight",
    "clock-skew": "preflight",
    "download-corrupts": "stage",  # the VM refuses the download: nothing installed
    "download-stalls": "stage",  # the stage timeout ends it
}
# faults the run recovers from: the verdict is the healthy one, and the VM's install step says how
RECOVERED: dict[str, str] = {"download-drops": "1 resumed download(s)"}
PYTEST_ARGS: dict[str, tuple[str, ...]] = {"worker-dies": ("-n", "2")}
PARALLEL = 3


def test_every_fault_is_in_the_matrix() -> None:
    assert set(EXPECTED_STEP) | set(RECOVERED) == set(FAULTS)


def _vault(server: OpenBao) -> dict:
    kv = server.client().secrets.kv.v2
    kv.create_or_update_secret("twin/remoting", {"username": "lab-admin", "password": "twin-vault-pass-1"})
    return {"kind": "vault", "settings": {"address": server.address, "remoting_path": "twin/remoting",
                                          "timeout": 5}}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Run, subprocess.CompletedProcess[str]]]:
    base = tmp_path_factory.mktemp("faults")
    servers: list[OpenBao] = []
    runs: dict[str, Run] = {}
    try:
        for fault in [*EXPECTED_STEP, *RECOVERED]:
            env: dict[str, str] = {}
            secrets = None
            if fault.startswith("vault-"):
                server = start_openbao(base / f"openbao-{fault}")  # its own: vault-sealed seals it
                servers.append(server)
                secrets = _vault(server)
                env["VAULT_TOKEN"] = server.root_token
            name = "f-" + fault
            runs[fault] = make_run(base, fault, lab_data(name, faults=[fault], secrets=secrets), **env)

        def run(fault: str) -> subprocess.CompletedProcess[str]:
            return runs[fault].suites(*PYTEST_ARGS.get(fault, ()))

        with cf.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            done = dict(zip(runs, pool.map(run, runs)))
        return {fault: (runs[fault], proc) for fault, proc in done.items()}
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(EXPECTED_STEP))
def test_fault_keeps_every_promise(matrix, fault: str) -> None:
    run, proc = matrix[fault]
    keeps_every_promise(run, proc, EXPECTED_STEP[fault], touched=fault != "lease-held",
                        worker_died=fault == "worker-dies")


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(RECOVERED))
def test_recovered_fault_gives_the_healthy_verdict(matrix, fault: str) -> None:
    run, proc = matrix[fault]
    context = f"\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0 and run.gate()["verdict"] == "approve", context
    vm = json.loads((run.out / "vms" / f"{FAULTY}.json").read_text())
    install = next(step for step in vm["steps"] if step["name"] == "install")
    assert RECOVERED[fault] in install["detail"], install
    assert vm["install"]["exit_code"] == 3010  # the resumed file is the approved one: DISM installed it
    for name in VMS:
        assert run.at_snapshot(name), f"{name}'s twin disk is not at its snapshot" + context
    assert run.leases() == []
    verify = run.patchgate("verify", str(run.out))
    assert verify.returncode == 0, verify.stdout + verify.stderr
