"""Run tags and the reaper: a run killed with SIGKILL leaves a tagged VM, the reaper reverts and untags it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from patchgate.hypervisors.vsphere import RunTag, VsphereHypervisor, reap
from patchgate.hypervisors.vsphere.collector import retrieve_one
from patchgate.hypervisors.vsphere.reaper import is_abandoned
from patchgate.hypervisors.vsphere.simulator import Vcsim

from .conftest import unique, vm_spec

VM = "DC0_C0_RP0_VM1"

TAGGER = textwrap.dedent("""
    import os, sys
    from pydantic import SecretStr
    from patchgate.config.lab import VmSpec
    from patchgate.hypervisors.vsphere.settings import VsphereSettings
    from patchgate.hypervisors.vsphere import VsphereHypervisor
    from patchgate.secrets.base import Credentials

    settings = VsphereSettings(url=os.environ["T_URL"], ca_bundle=os.environ["T_CA"])
    creds = Credentials(os.environ["T_USER"], SecretStr(os.environ["T_PASS"]))
    hv = VsphereHypervisor(settings, creds, "lab")
    hv.mark_in_use(VmSpec(name=os.environ["T_VM"], role="member", snapshot="x"), os.environ["T_RUN"])
    print("tagged", flush=True)
    sys.stdin.read()  # the run "works" until it is killed
""")


def current_snapshot(hv: VsphereHypervisor, name: str) -> str:
    return retrieve_one(hv.si, hv.vm_ref(vm_spec(name)), ["snapshot"])["snapshot"].currentSnapshot._moId


def test_mark_in_use_writes_json_and_clears(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    run = unique("run")
    hv.mark_in_use(spec, run)
    tag = hv.run_tag(spec)
    assert tag is not None and tag.run == run and tag.pid == os.getpid() and tag.host == socket.gethostname()
    raw = json.loads(hv.tag_field.read(hv.vm_ref(spec)))
    assert set(raw) == {"run", "host", "pid", "started"}
    hv.mark_in_use(spec, run + "-second")  # the simulator appends; the last value is the current one
    assert hv.run_tag(spec).run == run + "-second"  # type: ignore[union-attr]
    hv.mark_in_use(spec, None)
    assert hv.run_tag(spec) is None


def test_reap_reverts_and_untags_a_vm_left_by_a_killed_run(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    lab, dirty = unique("lab"), unique("dirty")
    spec = vm_spec(VM, snapshot=lab)
    ref = hv.vm_ref(spec)
    lab_ref = hv.create_snapshot(ref, VM, lab)
    run = unique("killed")
    env = dict(os.environ, T_URL=vcsim.url, T_CA=str(vcsim.cert_path), T_USER=vcsim.username,
               T_PASS=vcsim.password, T_VM=VM, T_RUN=run)
    proc = subprocess.Popen([sys.executable, "-c", TAGGER], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "tagged"
        hv.create_snapshot(ref, VM, dirty)  # what the run did before it died
        tag = hv.run_tag(spec)
        assert tag is not None and tag.run == run and tag.pid == proc.pid
        assert [a.outcome for a in reap(hv, [spec])] == ["alive"]  # still running: left alone
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdin.close()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]

    assert [a.outcome for a in reap(hv, [spec], dry_run=True)] == ["would-revert"]
    assert hv.run_tag(spec) is not None
    actions = reap(hv, [spec, vm_spec("DC0_H0_VM0")])

    assert len(actions) == 1  # the untagged VM is not touched
    action = actions[0]
    assert action.outcome == "reverted" and action.run == run and action.pid == proc.pid
    assert "no longer running" in action.reason and action.snapshot and action.snapshot.endswith(lab)
    assert current_snapshot(hv, VM) == lab_ref._moId
    assert hv.run_tag(spec) is None


def test_reap_other_hosts_by_age(hv: VsphereHypervisor) -> None:
    lab = unique("lab")
    spec = vm_spec(VM, snapshot=lab)
    lab_ref = hv.create_snapshot(hv.vm_ref(spec), VM, lab)
    now = datetime.now(UTC)
    young = RunTag(run="r-young", host="ci-runner-7", pid=1, started=(now - timedelta(minutes=5)).isoformat())
    hv.tag_field.write(hv.vm_ref(spec), young.to_json())
    assert [a.outcome for a in reap(hv, [spec], max_age=3600)] == ["alive"]
    old = RunTag(run="r-old", host="ci-runner-7", pid=1, started=(now - timedelta(hours=3)).isoformat())
    hv.tag_field.write(hv.vm_ref(spec), old.to_json())
    hv.create_snapshot(hv.vm_ref(spec), VM, unique("dirty"))
    (action,) = reap(hv, [spec], max_age=3600)
    assert action.outcome == "reverted" and "ci-runner-7" in action.reason
    assert current_snapshot(hv, VM) == lab_ref._moId and hv.run_tag(spec) is None


def test_reap_reports_foreign_values_and_failed_reverts(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM, snapshot=unique("no-such-snapshot"))
    hv.tag_field.write(hv.vm_ref(spec), "reserved by alice")
    assert [a.outcome for a in reap(hv, [spec])] == ["foreign"]
    dead = RunTag(run="r-dead", host=socket.gethostname(), pid=2 ** 22 + 12345,
                  started=datetime.now(UTC).isoformat())
    hv.tag_field.write(hv.vm_ref(spec), dead.to_json())
    (action,) = reap(hv, [spec])
    assert action.outcome == "failed" and "not found" in action.reason
    assert hv.run_tag(spec) is not None  # a VM that could not be reverted keeps its tag
    hv.mark_in_use(spec, None)


@pytest.mark.parametrize("alive,expected", [(True, False), (False, True)])
def test_local_tags_follow_process_liveness(alive: bool, expected: bool) -> None:
    tag = RunTag(run="r", host="here", pid=42, started=datetime.now(UTC).isoformat())
    abandoned, _ = is_abandoned(tag, max_age=1, this_host="here", alive=lambda pid, since: alive)
    assert abandoned is expected


def test_own_process_is_alive_and_a_reused_pid_is_not() -> None:
    from patchgate.hypervisors.vsphere.reaper import local_process_alive

    assert local_process_alive(os.getpid(), datetime.now(UTC))
    # our pid, but a tag written before this process started: the pid was reused
    assert not local_process_alive(os.getpid(), datetime(2000, 1, 1, tzinfo=UTC))
