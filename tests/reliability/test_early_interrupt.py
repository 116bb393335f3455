"""Ctrl-C at any moment, the first second included: a SIGINT to the run's whole process group (what a terminal
sends) at fixed delays after the start, several trials each. Whatever the run was doing (starting its interpreters,
checking files, taking leases, starting the suites, reverting), afterwards no lease is held or left stale, the
ledger (if the run got that far) is ended with every VM it touched restored, each VM it touched has its
``vms/<vm>.json``, and nothing printed a Python traceback.

The delays are the point of this test (an interrupt at an arbitrary moment), so they are timed sends, not waits for
readiness."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.reliability import VMS, communicate_or_explain, lab_data, make_run, validate_in_own_group

pytestmark = pytest.mark.slow

DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 3.0)
TRIALS = 5
LATENCY = {"revert": 1.0, "boot": 1.0, "install": 3.0}  # a run lasts well past the last delay


def still_starting_the_interpreter(output: str) -> bool:
    """CPython's own start-up (its standard streams, its site module) was interrupted: a fatal error naming the
    start-up step, printed before any patchgate code could run. It mostly ends in KeyboardInterrupt; interrupted
    inside the frozen ``io`` module it ends in another error ("TypeError: expected a message argument"), and then
    every frame of its traceback is one of the interpreter's own frozen modules."""
    if "Fatal Python error: init_" not in output:
        return False
    frames = [line.strip() for line in output.splitlines() if line.strip().startswith('File "')]
    return output.rstrip().endswith("KeyboardInterrupt") or (
        bool(frames) and all(frame.startswith('File "<frozen ') for frame in frames))


def still_loading_the_entry_module(output: str) -> bool:
    """The console script's import of ``patchgate.entry`` was interrupted before the module's first line (which
    holds the signals back) ran: a KeyboardInterrupt whose traceback is the script's import line and importlib's
    own frozen frames, nothing else. No patchgate code had run; the interpreter ends as -SIGINT."""
    lines = [line.strip() for line in output.strip().splitlines()]
    frames = [line for line in lines if line.startswith('File "')]
    return (bool(lines) and lines[0] == "Traceback (most recent call last):" and lines[-1] == "KeyboardInterrupt"
            and "from patchgate.entry import run" in lines and bool(frames)
            and all("<frozen importlib" in frame or frame.endswith("in <module>") for frame in frames)
            and sum(frame.endswith("in <module>") for frame in frames) == 1)


def restore_errors(out: Path, vms: list[str]) -> str:
    """What each VM's own file says about its restore, for a failure message."""
    import json

    lines = []
    for vm in vms:
        path = out / "vms" / f"{vm}.json"
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        lines.append(f"{vm}: restored={record.get('restored')} restore_error={record.get('restore_error')} "
                     f"steps={[(s.get('name'), s.get('ok'), s.get('detail')) for s in record.get('steps', [])]}")
    return "\n".join(lines)


@pytest.mark.parametrize("delay", DELAYS, ids=[f"{d:g}s" for d in DELAYS])
def test_sigint_to_the_process_group_at_any_moment_releases_everything(tmp_path: Path, delay: float) -> None:
    problems: list[str] = []
    for trial in range(TRIALS):
        run = make_run(tmp_path, f"t{trial}", lab_data(f"early-{trial}", latency=LATENCY,
                                                        timeouts={"ready": 30, "install": 60}))
        with validate_in_own_group(run) as proc:
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGINT)
            output = communicate_or_explain(proc, 90)
        where = f"trial {trial} (SIGINT at +{delay:g}s, exit {proc.returncode})"
        if proc.returncode == 1 and still_starting_the_interpreter(output):
            continue  # the interpreter was still starting: no patchgate code had run (as -SIGINT)
        if proc.returncode == -signal.SIGINT and still_loading_the_entry_module(output):
            continue  # Python was still finding patchgate's first module: nothing of patchgate had run
        if "Traceback" in output:
            problems.append(f"{where}: a traceback was printed:\n{output[-2500:]}")
        # 2: the suites wrote an inconclusive verdict; 130: interrupted before one could be written; -SIGINT: the
        # signal ended the interpreter before patchgate's code ran (a shell reports that as 130 too)
        if proc.returncode not in (2, 130, -signal.SIGINT):
            problems.append(f"{where}: exit {proc.returncode}, expected 2 (inconclusive) or 130 (interrupted)\n"
                            f"{output[-2500:]}")
        leases = run.leases() if (run.state / "leases").is_dir() else []
        if leases:
            problems.append(f"{where}: leases left: {[(i.vm, i.state) for i in leases]}\n{output[-1500:]}")
        ledgers = sorted((run.state / "runs").glob("*.jsonl")) if (run.state / "runs").is_dir() else []
        if ledgers:
            ledger = run.ledger()
            if not ledger.ended:
                problems.append(f"{where}: the ledger has no end entry\n{output[-1500:]}")
            if ledger.dirty_vms:
                problems.append(f"{where}: VMs left changed: {sorted(ledger.dirty_vms)}\n"
                                f"{restore_errors(run.out, sorted(ledger.dirty_vms))}\n{output[-2500:]}")
            touched = {vm for vm in VMS if f'"vm": "{vm}"' in ledger.path.read_text(encoding="utf-8")}
            missing = sorted(vm for vm in touched if not (run.out / "vms" / f"{vm}.json").is_file())
            if missing:
                problems.append(f"{where}: no vms/ file for {missing}")
        for vm in VMS:
            if run.disk_exists(vm) and not run.at_snapshot(vm):
                problems.append(f"{where}: {vm} is not at its snapshot")
    assert not problems, "\n\n".join(problems)
