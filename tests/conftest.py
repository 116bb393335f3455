"""Shared set-up for the harness's own tests.

Every test session gets its own PATCHGATE_STATE_DIR (run ledgers, local VM leases, twin disks), inherited by the
`patchgate` subprocesses the tests start, so concurrent test sessions on one machine never contend for the same
lab VMs and no test reads state another left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from patchgate.errors import HypervisorError

_STATE = tempfile.mkdtemp(prefix="patchgate-test-state-")
os.environ.setdefault("PATCHGATE_STATE_DIR", _STATE)


@pytest.fixture(scope="session")
def state_dir() -> str:
    return os.environ["PATCHGATE_STATE_DIR"]


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    """govmomi's vSphere simulator, built once (tools/vcsim) for every test that needs a vCenter."""
    from patchgate.hypervisors.vsphere.simulator import build

    try:
        return build()
    except HypervisorError as exc:
        pytest.fail(f"cannot build the vSphere simulator: {exc}", pytrace=False)
