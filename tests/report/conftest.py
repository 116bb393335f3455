"""Runs of `patchgate validate` shared by the report tests: one per candidate per session, into tmp folders.

Each run uses its own PATCHGATE_STATE_DIR so the local VM leases of other runs on this machine cannot make it
broken, and CI variables are removed so executor.json only appears where a test asks for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from report.runs import ROOT, Run, validate


@pytest.fixture(scope="session")
def blocked_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return validate(tmp_path_factory, "kb5070881", "--lab", "twin", "--candidate", "KB5070881")


@pytest.fixture(scope="session")
def approved_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return validate(tmp_path_factory, "kb5070893", "--lab", "twin", "--candidate", "KB5070893")


@pytest.fixture(scope="session")
def xdist_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """KB5070881 under pytest-xdist, as if in GitHub Actions (executor.json must appear)."""
    return validate(tmp_path_factory, "kb5070881-xdist", "--lab", "twin", "--candidate", "KB5070881", "--", "-n", "2",
                    GITHUB_ACTIONS="true", GITHUB_RUN_ID="4242", GITHUB_RUN_NUMBER="17",
                    GITHUB_SERVER_URL="https://github.example", GITHUB_REPOSITORY="infra/patchgate",
                    GITHUB_WORKFLOW="nightly gate", GITHUB_JOB="validate", GITHUB_ACTOR="jdoe-ci")


@pytest.fixture(scope="session")
def waived_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """KB5070881 on one VM with a lab policy that waives hotpatch.track there: the failure is reported as waived."""
    lab = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    lab["name"] = "twin-waived"
    lab["policy"]["waivers"] = [{"invariant": "hotpatch.track", "vms": ["ws25-hp-01"], "owner": "jdoe",
                                 "expires": "2030-01-31", "candidate": "KB5070881",
                                 "justification": "accepted until the January 2026 hotpatch baseline"}]
    folder = tmp_path_factory.mktemp("waived-lab")
    (folder / "twin-waived.yaml").write_text(yaml.safe_dump(lab), encoding="utf-8")
    return validate(tmp_path_factory, "kb5070881-waived", "--lab", str(folder / "twin-waived.yaml"),
                    "--candidate", "KB5070881", "--vm", "ws25-hp-01")


@pytest.fixture
def run_copy(blocked_run: Run, tmp_path: Path) -> Path:
    """A private copy of the blocked run that a test may tamper with."""
    target = tmp_path / "run"
    shutil.copytree(blocked_run.out, target)
    return target
