"""The pytest-xdist workers of one run share one approval on a WSUS outside the lab (patchgate.wsus.holders): the
first approves, a later one joins, only the last to leave undoes, and a holder whose process is gone counts as
left. Real files under a real flock, in a state folder of the test's own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from patchgate.errors import LabError
from patchgate.wsus.holders import SharedApproval
from patchgate.wsus.ops import Approval

APPROVAL = Approval(server="wsus-ext-01", kb="KB5070881", group="patchgate-lab", group_created=True,
                    previous_targeting_mode="Server", url="http://wsus-ext-01:8530")


@pytest.fixture
def shared(tmp_path, monkeypatch) -> SharedApproval:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path))
    from patchgate.environment import environment

    if hasattr(environment, "cache_clear"):
        environment.cache_clear()
    holders = SharedApproval("run-1")
    assert holders.path.parent == tmp_path / "runs"
    return holders


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_first_approves_a_second_joins_and_only_the_last_to_leave_undoes(shared):
    made = []
    assert shared.join(lambda: made.append(1) or APPROVAL) == (APPROVAL, True)
    assert shared.join(lambda: made.append(2) or APPROVAL) == (APPROVAL, False)  # the same process, joining
    assert made == [1]
    doc = json.loads(shared.path.read_text())
    doc["holders"]["1"] = next(iter(doc["holders"].values()))  # pid 1 stands for another worker still running
    shared.path.write_text(json.dumps(doc))
    undone = []
    assert shared.leave(undone.append) == [1] and undone == []
    doc = json.loads(shared.path.read_text())
    del doc["holders"]["1"]
    shared.path.write_text(json.dumps(doc))
    assert shared.leave(undone.append) == [] and undone == [APPROVAL]
    assert json.loads(shared.path.read_text())["approval"] is None


def test_a_holder_whose_process_is_gone_counts_as_left(shared):
    shared.join(lambda: APPROVAL)
    doc = json.loads(shared.path.read_text())
    doc["holders"][str(_dead_pid())] = next(iter(doc["holders"].values()))
    shared.path.write_text(json.dumps(doc))
    undone = []
    assert shared.leave(undone.append) == [] and undone == [APPROVAL]


def test_an_approval_that_failed_is_not_made_again_by_another_worker(shared):
    def failing() -> Approval:
        raise LabError("the WSMan request timed out")

    with pytest.raises(LabError):
        shared.join(failing)
    with pytest.raises(LabError, match="another pytest-xdist worker of this run could not approve: .*timed out"):
        shared.join(lambda: APPROVAL)
