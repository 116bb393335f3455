"""Ctrl-C while the run still waits for a VM another run holds: the run is already built (its ledger open, the
twin's process up, the other VMs' leases taken), so the interrupt must tear all of it down, although it lands
before the run has returned to the code that started it. Afterwards no lease of this run is held or stale and the
ledger is ended."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support.reliability import FAULTY, communicate_or_explain, lab_data, make_run, validate_in_own_group

pytestmark = pytest.mark.slow



def test_sigint_while_waiting_for_a_held_lease_releases_everything(tmp_path: Path) -> None:
    run = make_run(tmp_path, "wait", lab_data("early-lease", faults=["lease-held"],
                                               timeouts={"ready": 60, "install": 60}))
    seen: list[str] = []
    with validate_in_own_group(run) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # ready when the run says it waits for the held lease
            seen.append(line)
            if FAULTY in line and "waiting: leased by" in line:
                break
        else:
            pytest.fail("the run never waited for the held lease:\n" + "".join(seen)[-3000:])
        os.killpg(proc.pid, signal.SIGINT)
        rest = communicate_or_explain(proc, 90)
    output = "".join(seen) + rest
    assert proc.returncode in (2, 130), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not run.leases(), [(lease.vm, lease.state) for lease in run.leases()]
    ledger = run.ledger()
    assert ledger.ended, output[-3000:]
    assert not ledger.dirty_vms
