"""A gate run keeps to temporary folders of its own. pytest without ``--basetemp`` numbers a folder under
/tmp/pytest-of-<user>/ for a session that needs one (every pytest-xdist run does, for its workers) and at the end
deletes that user's older numbered folders but three: their own pytest sessions' folders, which a gate run must
not touch (deleting them also held the verdict's exit back by seconds)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import pytest
from support.suite_runs import ROOT, run_suites

pytestmark = pytest.mark.slow


def test_a_gate_run_under_xdist_leaves_the_users_pytest_folders_alone(tmp_path: Path) -> None:
    root = tmp_path / "temproot"
    users = root / f"pytest-of-{getpass.getuser()}"
    theirs = [users / f"pytest-{number}" for number in range(1, 6)]
    for folder in theirs:
        folder.mkdir(parents=True)
        (folder / "their-file").write_text("theirs", encoding="utf-8")
    env = dict(os.environ, PYTEST_DEBUG_TEMPROOT=str(root), PATCHGATE_STATE_DIR=str(tmp_path / "state"))
    finished = run_suites(ROOT / "labs" / "twin.yaml", ROOT / "candidates" / "KB5070893.yaml", tmp_path / "out", env,
                          extra=["-n", "2"])
    assert finished.returncode == 0, finished.output[-3000:]
    assert "2 workers" in finished.output or "gw1" in finished.output, finished.output[-2000:]  # it ran on xdist
    assert sorted(p.name for p in users.iterdir()) == [folder.name for folder in theirs]  # none made, none deleted
    assert all((folder / "their-file").read_text(encoding="utf-8") == "theirs" for folder in theirs)
