"""Busy VMs are refused; the task waiter reports progress, times out, cancels and names the VM.

The simulator completes its own tasks synchronously, so tools/vcsim adds "held" tasks: a task that stays
running on a VM (listed in its recentTask, like vCenter) until the test releases or cancels it.
"""

from __future__ import annotations

import threading

import pytest
from pyVmomi import vim

from patchgate.errors import HypervisorError, LabTimeout
from patchgate.hypervisors.vsphere import TaskCancelled, TaskWaiter, VsphereHypervisor
from patchgate.hypervisors.vsphere.collector import retrieve_one
from patchgate.hypervisors.vsphere.simulator import Vcsim

from .conftest import unique, vm_spec

VM = "DC0_C0_RP0_VM0"


def task_ref(hv: VsphereHypervisor, moid: str) -> vim.Task:
    return vim.Task(moid, hv.si._stub)


def task_state(hv: VsphereHypervisor, moid: str) -> dict[str, object]:
    return retrieve_one(hv.si, task_ref(hv, moid), ["info.state", "info.cancelled"])


def test_vm_with_a_running_task_is_refused(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    lab = unique("lab")
    spec = vm_spec(VM, snapshot=lab)
    hv.create_snapshot(hv.vm_ref(spec), VM, lab)
    task = vcsim.hold_task(VM)
    try:
        for action in (hv.revert, hv.reboot):
            with pytest.raises(HypervisorError) as err:
                action(spec)
            assert "task in progress" in str(err.value) and task in str(err.value)
            assert err.value.vm == VM
    finally:
        assert vcsim.release_task(task) == "success"
    assert hv.revert(spec).name.endswith(lab)  # free again once the task ended


def test_vm_waiting_on_a_question_is_refused(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    lab = unique("lab")
    spec = vm_spec(VM, snapshot=lab)
    hv.create_snapshot(hv.vm_ref(spec), VM, lab)
    vcsim.ask_question(VM, "Did you move or copy this virtual machine?")
    try:
        with pytest.raises(HypervisorError, match="waiting on a question \\(Did you move or copy"):
            hv.revert(spec)
    finally:
        vcsim.clear_question(VM)
    hv.revert(spec)


def test_waiter_reports_progress_until_success(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    moid = vcsim.hold_task(VM, progress=10)
    seen: list[int] = []

    def on_progress(pct: int) -> None:  # drives the task forward as each step is observed
        seen.append(pct)
        if pct == 10:
            vcsim.task_progress(moid, 60)
        elif pct == 60:
            vcsim.release_task(moid)

    hv.waiter.wait(task_ref(hv, moid), vm=VM, operation="held", timeout=30, on_progress=on_progress)
    assert seen[:2] == [10, 60] and seen[-1] == 100


def test_failed_task_names_vm_operation_and_fault(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    moid = vcsim.hold_task(VM)
    vcsim.release_task(moid, fault=True)
    with pytest.raises(HypervisorError) as err:
        hv.waiter.wait(task_ref(hv, moid), vm=VM, operation="install-snapshot", timeout=30)
    assert err.value.vm == VM and err.value.step == "install-snapshot"
    assert "install-snapshot failed: SystemError" in str(err.value)


def test_timeout_cancels_a_cancelable_task(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    moid = vcsim.hold_task(VM, cancelable=True)
    with pytest.raises(LabTimeout) as err:
        hv.waiter.wait(task_ref(hv, moid), vm=VM, operation="revert", timeout=1)
    assert "did not finish within 1s" in str(err.value) and "cancelled" in str(err.value)
    state = task_state(hv, moid)
    assert state["info.state"] == "error" and state["info.cancelled"] is True


def test_timeout_on_a_task_that_cannot_be_cancelled_says_so(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    moid = vcsim.hold_task(VM, cancelable=False)
    try:
        with pytest.raises(LabTimeout, match="not cancelable, still running"):
            hv.waiter.wait(task_ref(hv, moid), vm=VM, operation="revert", timeout=1)
        assert task_state(hv, moid)["info.state"] == "running"
    finally:
        vcsim.release_task(moid)


def test_cancel_event_cancels_the_task(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    moid = vcsim.hold_task(VM, progress=5)
    event = threading.Event()
    waiter = TaskWaiter(hv.si, default_timeout=30, cancel_event=event)
    with pytest.raises(TaskCancelled, match=f"interrupted; vSphere task {moid} cancelled"):
        waiter.wait(task_ref(hv, moid), vm=VM, operation="revert", on_progress=lambda pct: event.set())
    assert task_state(hv, moid)["info.cancelled"] is True


def test_keyboard_interrupt_cancels_the_task_and_propagates(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    moid = vcsim.hold_task(VM, progress=5)

    def interrupt(pct: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hv.waiter.wait(task_ref(hv, moid), vm=VM, operation="revert", on_progress=interrupt)
    state = task_state(hv, moid)
    assert state["info.state"] == "error" and state["info.cancelled"] is True


def test_fault_at_submission_becomes_hypervisor_error(hv: VsphereHypervisor) -> None:
    ref = hv.vm_ref(vm_spec(VM))
    gone = hv.create_snapshot(ref, VM, unique("gone"))
    hv.waiter.run(lambda: gone.RemoveSnapshot_Task(removeChildren=False), vm=VM, operation="remove-snapshot")
    with pytest.raises(HypervisorError) as err:
        hv.waiter.run(lambda: gone.RevertToSnapshot_Task(), vm=VM, operation="revert")
    assert err.value.vm == VM and "revert refused: ManagedObjectNotFound" in str(err.value)
