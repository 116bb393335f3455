"""Interrupting a running `patchgate validate`: SIGINT/SIGTERM restore and write a partial verdict; SIGKILL leaves
the lab changed until `patchgate reap` restores it.

The signal is sent at a known point: when the run's ledger records the install on both VMs (the twin's install
latency then keeps the install running), never after a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.reliability import FAULTY, HEALTHY, ROOT, VMS, Run, lab_data, make_run
from support.waiting import wait_until

SLOW_INSTALL = {"install": 120}  # seconds of twin install time: the run is mid-install when the signal arrives
DEADLINE = 90


def slow_lab(name: str, **extra) -> dict:
    return lab_data(name, latency=SLOW_INSTALL, timeouts={"install": 300}, **extra)


def start(run: Run, *pytest_args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(run.command(*pytest_args), cwd=ROOT, env=run.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_ledger(run: Run, proc: subprocess.Popen[str], action: str, count: int) -> list[dict]:
    """Poll the run's ledger until ``count`` entries of ``action`` are written (or fail with the run's output)."""

    def recorded() -> list[dict] | None:
        entries = _ledger_entries(run)
        if sum(1 for e in entries if e.get("action") == action) >= count:
            return entries
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its ledger recorded {count} x {action}:\n{proc.stdout.read()}")
        return None

    try:
        return wait_until(recorded, f"no {count} x {action} in the ledger", timeout=DEADLINE)
    except AssertionError:
        _kill(proc)
        raise


def _ledger_entries(run: Run) -> list[dict]:
    entries: list[dict] = []
    for path in (run.state / "runs").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line the run is still writing
    return entries


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_install_restores_releases_and_writes_a_partial_verdict(tmp_path: Path, signum: int) -> None:
    run = make_run(tmp_path, "sig", slow_lab(f"sig-{signum}"))
    proc = start(run)
    try:
        wait_for_ledger(run, proc, "install", 2)
        for vm in VMS:
            assert not run.at_snapshot(vm)  # mid-run: the VMs are changed
        # a live run's VMs are not reaped
        dry = run.patchgate("reap", "--lab", str(run.lab_file), "--dry-run")
        assert dry.returncode == 0 and "nothing to reap" in dry.stdout, dry.stdout + dry.stderr
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=DEADLINE)
    finally:
        _kill(proc)
    assert proc.returncode == 2, output[-3000:]
    gate = run.gate()
    assert gate["verdict"] == "inconclusive" and gate["interrupted"] is True, gate["reason"]
    assert "interrupted" in gate["reason"]
    for vm in VMS:
        assert run.at_snapshot(vm), f"{vm} was not restored\n{output[-3000:]}"
    ledger = run.ledger()
    assert ledger.dirty_vms == {} and ledger.ended
    leases = run.patchgate("leases", "--lab", str(run.lab_file))
    assert "No VM leases held" in leases.stdout, leases.stdout
    verify = run.patchgate("verify", str(run.out))
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.slow
def test_sigkill_leaves_the_lab_changed_and_reap_restores_it(tmp_path: Path) -> None:
    run = make_run(tmp_path, "kill", slow_lab("kill"))
    proc = start(run)
    try:
        wait_for_ledger(run, proc, "install", 2)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, as a CI runner that is torn down
        proc.wait(timeout=30)
    finally:
        _kill(proc)
    _wait_until_gone(run.ledger().pid)  # the pytest child dies with the group, maybe a moment after the CLI
    lab = str(run.lab_file)
    for vm in VMS:
        assert not run.at_snapshot(vm), f"{vm} should still be changed after SIGKILL"
    assert set(run.ledger().dirty_vms) == set(VMS)
    # flock freed by the kernel, holder record left: once the last of the process's threads has exited, which
    # can be a moment after its main thread shows as a zombie (the test above waits for that)
    wait_until(lambda: {info.state for info in run.leases()} == {"stale"},
               "the killed run's leases are still locked", timeout=30)

    dry = run.patchgate("reap", "--lab", lab, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    for vm in VMS:
        assert "would-restore" in dry.stdout and vm in dry.stdout
        assert not run.at_snapshot(vm), "a dry run changed the VM"
    assert "would-remove-lease" in dry.stdout

    reaped = run.patchgate("reap", "--lab", lab)
    assert reaped.returncode == 0, reaped.stdout + reaped.stderr
    lines = reaped.stdout.splitlines()
    for vm in VMS:
        assert any(line.split()[:2] == ["restored", vm] for line in lines), reaped.stdout
        assert any(line.split()[:2] == ["lease-removed", vm] for line in lines), reaped.stdout
        assert run.at_snapshot(vm)
    leases = run.patchgate("leases", "--lab", lab)
    assert "No VM leases held" in leases.stdout, leases.stdout
    ledger = run.ledger()
    assert ledger.dirty_vms == {} and ledger.ended
    assert sum('"action": "reaped"' in line for line in ledger.path.read_text().splitlines()) == 2

    again = run.patchgate("reap", "--lab", lab)
    assert again.returncode == 0 and "nothing to reap" in again.stdout


def _wait_until_gone(pid: int, timeout: float = 30.0) -> None:
    from patchgate.run.liveness import process_alive

    wait_until(lambda: not process_alive(pid), f"run process {pid} still alive after SIGKILL", timeout=timeout)


@pytest.mark.slow
def test_a_revert_that_keeps_failing_is_reported_and_left_for_reap(tmp_path: Path) -> None:
    run = make_run(tmp_path, "revert", lab_data("revert-always", faults=["revert-fails:always"]))
    proc = subprocess.run(run.command(), cwd=ROOT, env=run.env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stdout[-3000:]
    gate = run.gate()
    restore = [c for c in gate["checks"] if c["invariant"] == "lab.restore"]
    assert [c["vm"] for c in restore] == [FAULTY] and restore[0]["status"] == "broken"
    assert run.at_snapshot(HEALTHY)
    assert set(run.ledger().dirty_vms) == {FAULTY}
    assert run.leases() == []
    reaped = run.patchgate("reap", "--lab", str(run.lab_file))
    assert reaped.returncode == 0 and "restored" in reaped.stdout, reaped.stdout + reaped.stderr
    assert run.at_snapshot(FAULTY) and run.ledger().dirty_vms == {}


@pytest.mark.slow
def test_controller_reaps_the_vm_of_a_worker_that_is_not_replaced(tmp_path: Path) -> None:
    run = make_run(tmp_path, "worker", lab_data("worker-gone", faults=["worker-dies"]))
    proc = subprocess.run(run.command("-n", "2", "--max-worker-restart", "0"), cwd=ROOT, env=run.env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert run.gate()["verdict"] == "inconclusive"
    assert "restored" in proc.stdout and FAULTY in proc.stdout  # the controller's reap report
    for vm in VMS:
        assert run.at_snapshot(vm)
    ledger = run.ledger()
    assert ledger.dirty_vms == {}
    # restored by the worker before it died (restores overlap the checks) or reaped by the controller afterwards
    assert any(('"action": "reaped"' in line or '"action": "restored"' in line) and FAULTY in line
               for line in ledger.path.read_text().splitlines())
    assert run.leases() == []
