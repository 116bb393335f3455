"""Shared set-up for the harness's own tests.

Every test session gets its own PATCHGATE_STATE_DIR (run ledgers, local VM leases, twin disks), inherited by the
`patchgate` subprocesses the tests start, so concurrent test sessions on one machine never contend for the same
lab VMs and no test reads state another left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from patchgate.errors import HypervisorError

# made by the session that starts first (xdist's workers inherit it) and removed by that session when it ends
_OWN_STATE = None if os.environ.get("PATCHGATE_STATE_DIR") else tempfile.mkdtemp(prefix="patchgate-test-state-")
if _OWN_STATE:
    os.environ["PATCHGATE_STATE_DIR"] = _OWN_STATE


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: two workers per core. Most tests wait on real servers, `patchgate validate` subprocesses and
    simulated lab latency, so one worker per core leaves the cores idle half the time (measured: 465 CPU seconds
    in 443 s of wall on 2 cores); three per core only adds CPU (2026-12-07, 1107 tests on 2 cores: 4 workers
    6 min 47 s of wall for 603 CPU seconds, 6 workers 7 min 27 s for 695). PYTEST_XDIST_AUTO_NUM_WORKERS still
    decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return 2 * len(os.sched_getaffinity(0))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_STATE:
        shutil.rmtree(_OWN_STATE, ignore_errors=True)


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


# --- end-to-end runs of the default twin lab, shared by every folder's tests (support/shared_runs.py)

GITHUB_ACTIONS_ENV = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_NUMBER": "17",
                      "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "infra/patchgate",
                      "GITHUB_WORKFLOW": "nightly gate", "GITHUB_JOB": "validate", "GITHUB_ACTOR": "jdoe-ci"}


@pytest.fixture(scope="session")
def blocked_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """KB5070881 on the twin lab in one process: blocked (hotpatch.track fails on the three enrolled VMs)."""
    from support.shared_runs import shared_validate

    return shared_validate(tmp_path_factory, worker_id, "kb5070881", "--lab", "twin", "--candidate", "KB5070881")


@pytest.fixture(scope="session")
def approved_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """KB5070893 on the twin lab in one process: approved."""
    from support.shared_runs import shared_validate

    return shared_validate(tmp_path_factory, worker_id, "kb5070893", "--lab", "twin", "--candidate", "KB5070893")


@pytest.fixture(scope="session")
def xdist_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """KB5070881 under pytest-xdist (-n 2), as if in GitHub Actions (executor.json must appear)."""
    from support.shared_runs import shared_validate

    return shared_validate(tmp_path_factory, worker_id, "kb5070881-xdist", "--lab", "twin", "--candidate",
                           "KB5070881", "--", "-n", "2", env=GITHUB_ACTIONS_ENV)
