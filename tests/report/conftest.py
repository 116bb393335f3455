"""Runs of `patchgate validate` for the report tests (the default lab's blocked, approved and xdist runs are shared
by every folder: tests/conftest.py).

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
