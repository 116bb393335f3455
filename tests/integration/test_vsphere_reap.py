"""Issue 7: `patchgate reap --lab` a vSphere simulator lab after a `patchgate validate` killed with SIGKILL.

The run is stopped where it cannot finish by itself: its VM's guest never gets ready (twin fault
``never-ready``), so the run sits in the readiness wait after reverting and tagging the VM. The test
waits until the VM carries the run's tag (polling the simulator), kills the run, and reaps.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.runs import kill_group
from support.waiting import wait_until

from patchgate.config import load_lab
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.simulator import Vcsim

from .helpers import PATCHGATE, ROOT, TWIN_VMS, clean_env, explain, patchgate, write_lab

pytestmark = pytest.mark.slow

VM = "ws25-hp-01"
TAG_TIMEOUT = 120.0


def test_reap_restores_a_vm_a_killed_run_left_tagged(simulator: Vcsim, tmp_path: Path) -> None:
    vms = [dict(vm, faults=["never-ready"]) if vm["name"] == VM else vm for vm in TWIN_VMS]
    lab_path = write_lab(tmp_path / "vsphere-reap.yaml", name="vsphere-reap", vms=vms,
                         hypervisor={"kind": "vsphere", "settings": {
                             "url": simulator.url, "ca_bundle": str(simulator.cert_path), "guests": "twin",
                             "tools_timeout": 600, "heartbeat_timeout": 600, "ip_timeout": 600}},
                         secrets={"kind": "env"}, timeouts={"ready": 600})
    env = clean_env(tmp_path / "state", PATCHGATE_USERNAME="Administrator", PATCHGATE_PASSWORD="twin-guest-pw-1",
                    PATCHGATE_HYPERVISOR_USERNAME=simulator.username,
                    PATCHGATE_HYPERVISOR_PASSWORD=simulator.password)
    lab = load_lab(lab_path)
    spec = lab.vm(VM)
    hv = VsphereHypervisor(lab.hypervisor.settings, simulator.credentials, lab.name)  # type: ignore[arg-type]
    run = subprocess.Popen([PATCHGATE, "validate", "--lab", str(lab_path), "--candidate", "KB5070893", "--vm", VM,
                            "--out", str(tmp_path / "out")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        def tagged():  # type: ignore[no-untyped-def]
            assert run.poll() is None, f"the run ended before it was killed: {run.communicate()[0][-3000:]}"
            try:
                hv.connect()  # idempotent
                return hv.run_tag(spec)
            except Exception:  # noqa: BLE001 - until the run has prepared the simulator, the VM may not exist
                return None

        tag = wait_until(tagged, "the run never tagged its VM", timeout=TAG_TIMEOUT, interval=0.1)
        # the process that tagged the VM is the suites' pytest under `patchgate validate`: kill it without any
        # chance of cleanup (no restore, no lease release, no ledger end)
        os.kill(tag.pid, signal.SIGKILL)
        run.wait(timeout=60)
        assert run.returncode == 2, "validate must report an inconclusive run when its suites died"
        assert hv.run_tag(spec) is not None  # still tagged: nobody cleaned up
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)

    reaped = patchgate("reap", "--lab", str(lab_path), env=env)
    assert reaped.returncode == 0, explain(reaped)
    lines = [line.split() for line in reaped.stdout.splitlines()]
    assert any(line[:2] == ["restored", VM] for line in lines), reaped.stdout
    assert hv.run_tag(spec) is None
    again = patchgate("reap", "--lab", str(lab_path), env=env)
    assert again.returncode == 0 and "nothing to reap" in again.stdout, explain(again)
    listed = patchgate("leases", "--lab", str(lab_path), env=env)
    assert "No VM leases held" in listed.stdout, explain(listed)
    ledgers = list((tmp_path / "state" / "runs").rglob("*"))
    assert any("reaped" in p.read_text() for p in ledgers if p.is_file()), [p.name for p in ledgers]
    hv.close()


def test_a_clean_rehearsal_lab_reads_clean_and_reap_converges(simulator: Vcsim, tmp_path: Path) -> None:
    """After a finished validate on labs/vsphere-sim.example.yaml nothing is left to reap; after a SIGKILLed
    run, one reap restores what it left and a second reap finds nothing."""
    from .test_vsphere_validate import simulator_lab

    lab_path = simulator_lab(simulator, tmp_path / "rehearsal.yaml")
    env = clean_env(tmp_path / "state", PATCHGATE_USERNAME="Administrator", PATCHGATE_PASSWORD="twin-guest-pw-1",
                    PATCHGATE_HYPERVISOR_USERNAME=simulator.username,
                    PATCHGATE_HYPERVISOR_PASSWORD=simulator.password)
    done = patchgate("validate", "--lab", str(lab_path), "--candidate", "KB5070893", "--out", str(tmp_path / "a"),
                     env=env)
    assert done.returncode == 0, explain(done)
    dry = patchgate("reap", "--lab", str(lab_path), "--dry-run", env=env)
    assert dry.returncode == 0 and "nothing to reap" in dry.stdout, explain(dry)

    runs = tmp_path / "state" / "runs"
    earlier = set(runs.glob("*.jsonl"))
    run = subprocess.Popen([PATCHGATE, "validate", "--lab", str(lab_path), "--candidate", "KB5070893", "--out",
                            str(tmp_path / "b")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        def installing() -> bool:  # mid-run: the VMs are changed
            assert run.poll() is None, run.communicate()[0][-3000:]
            return any('"install"' in p.read_text() for p in set(runs.glob("*.jsonl")) - earlier)

        wait_until(installing, "the run never reached its install", timeout=TAG_TIMEOUT)
    finally:
        kill_group(run)
    from patchgate.run.ledger import read_ledger
    from patchgate.run.liveness import process_alive

    (ledger_path,) = set(runs.glob("*.jsonl")) - earlier
    pid = read_ledger(ledger_path).pid
    # the suites' process dies with its group, maybe a moment after validate
    wait_until(lambda: not process_alive(pid), f"the suites' process {pid} to end", timeout=30)
    first = patchgate("reap", "--lab", str(lab_path), env=env)
    assert first.returncode == 0 and "restored" in first.stdout, explain(first)
    second = patchgate("reap", "--lab", str(lab_path), env=env)
    assert second.returncode == 0 and "nothing to reap" in second.stdout, explain(second)
    dry_again = patchgate("reap", "--lab", str(lab_path), "--dry-run", env=env)
    assert "nothing to reap" in dry_again.stdout, explain(dry_again)
