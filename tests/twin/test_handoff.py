"""The twin's process `patchgate validate` starts for its suites (patchgate_twin.handoff).

What must hold: the suites' lab run drives the process it was handed (the twin's records reach the suites'
logging, the disks are written when the run closes the service), a declined or unreachable hand-over leaves the
run to start its own, nothing survives `patchgate validate`, and the key never travels in the environment.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from support.waiting import wait_until

from patchgate.components import build_components
from patchgate.config import Lab
from patchgate.errors import EXIT_INCONCLUSIVE
from patchgate.liveness import process_alive
from patchgate_twin.handoff import HANDOFF_FD_ENV, TwinHandoff, attach_handed_over
from patchgate_twin.lab import TwinDisks, check_twin_inputs
from tests.support.runs import PATCHGATE, ROOT, clean_env, patchgate
from tests.twin.test_own_process import lab_document, wait_until_gone


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def handed_over(lab: Lab) -> tuple[TwinHandoff, object]:
    """Both sides in one process: what validate offers, read from the pipe as the suites read it."""
    handoff = TwinHandoff()
    read_end = os.dup(handoff.pass_fds[0])
    handoff.child_started()
    handoff.offer(lab, check_twin_inputs(lab, []), [])
    return handoff, attach_handed_over(read_end, lab.name)


def test_the_run_drives_the_process_it_was_handed_and_its_records_reach_it(
        state: Path, caplog: pytest.LogCaptureFixture) -> None:
    lab = Lab.model_validate(lab_document())
    caplog.set_level(logging.DEBUG)  # the child, forked before, takes the levels of the process that attaches
    handoff, attached = handed_over(lab)
    try:
        assert attached is not None and handoff.process is not None
        components = build_components(lab, twin_catalogs=[], stop=threading.Event(), twin_process=attached)
        try:
            assert components.twin.process is attached
            child = attached.pid
            assert child is not None and child != os.getpid() and process_alive(child)
            components.hypervisor.revert(lab.vms[0])
        finally:
            components.close()  # the service closes and the disks are written; the process is validate's to end
        assert any("reverted to" in r.getMessage() for r in caplog.records), caplog.text
        assert (state / "twin" / "own-process" / "op-hp-01.pickle").is_file()
        assert process_alive(child)
    finally:
        handoff.close()
    assert wait_until_gone(child)


def test_a_declined_hand_over_leaves_the_run_to_start_its_own(state: Path) -> None:
    handoff = TwinHandoff()
    read_end = os.dup(handoff.pass_fds[0])
    handoff.child_started()
    handoff.decline()
    assert attach_handed_over(read_end, "own-process") is None
    handoff.close()


def test_a_process_that_is_gone_is_not_attached_to(state: Path) -> None:
    lab = Lab.model_validate(lab_document())
    handoff = TwinHandoff()
    read_end = os.dup(handoff.pass_fds[0])
    handoff.child_started()
    handoff.offer(lab, check_twin_inputs(lab, []), [])
    handoff.process.discard()  # type: ignore[union-attr]
    assert attach_handed_over(read_end, lab.name) is None
    handoff.close()


def test_the_key_travels_through_the_pipe_never_the_environment(state: Path) -> None:
    lab = Lab.model_validate(lab_document())
    handoff = TwinHandoff()
    env = handoff.child_env()
    read_end = os.dup(handoff.pass_fds[0])
    handoff.child_started()
    handoff.offer(lab, check_twin_inputs(lab, []), [])
    try:
        assert env == {HANDOFF_FD_ENV: env[HANDOFF_FD_ENV]} and env[HANDOFF_FD_ENV].isdigit()
        with os.fdopen(read_end, "rb") as pipe:
            word, address, key = pipe.readline().decode("ascii").split()
        assert word == "ready" and bytes.fromhex(key) == handoff.process.authkey  # type: ignore[union-attr]
        assert key not in repr(env) and len(key) == 64
    finally:
        handoff.close()


def test_nothing_outlives_validate(tmp_path: Path) -> None:
    out = tmp_path / "out-handoff-check"
    done = patchgate("validate", "--lab", "twin", "--candidate", "KB5070893", "--out", str(out), "--",
                     "-k", "no_check_has_this_name", env=clean_env(tmp_path / "state", PATCHGATE_PROGRESS="off"),
                     timeout=180)
    assert done.returncode == EXIT_INCONCLUSIVE, done.stdout + done.stderr  # nothing was checked
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert not list((tmp_path / "state").rglob("*.pickle"))  # no VM's disk was written: none was touched
    assert not processes_mentioning(out), "a process of that run (the twin's) outlived patchgate validate"


def test_a_killed_harness_leaves_its_vms_changed_and_no_twin_behind(tmp_path: Path) -> None:
    """validate's pytest killed mid-run: validate ends the twin it started, and the VM the run changed is left
    marked changed (for `patchgate reap`), as it is when an in-process twin dies."""
    state, out = tmp_path / "state", tmp_path / "out-killed-harness"
    validate = subprocess.Popen([PATCHGATE, "validate", "--lab", "twin", "--candidate", "KB5070881", "--vm",
                                 "ws25-hp-01", "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=clean_env(state, PATCHGATE_PROGRESS="lines"))
    try:
        disks = TwinDisks("twin", state / "twin" / "twin")
        def changed() -> bool:  # the run has changed the VM
            assert validate.poll() is None, "the run ended before it reached the lab"
            return not disks.at_snapshot("ws25-hp-01")

        wait_until(changed, "the run never reached the lab", timeout=60)
        suites = [pid for pid in processes_mentioning(out) if b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert suites, "no pytest child found"
        for pid in suites:
            os.kill(int(pid), signal.SIGKILL)
        validate.wait(timeout=60)
    finally:
        if validate.poll() is None:
            validate.kill()
    assert not processes_mentioning(out), "a process of the killed run (the twin's) outlived patchgate validate"
    assert not disks.at_snapshot("ws25-hp-01")  # still changed: nobody wrote it back as clean


def processes_mentioning(text: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(text).encode() in cmdline and int(pid) != os.getpid():
            found.append(pid)
    return found
