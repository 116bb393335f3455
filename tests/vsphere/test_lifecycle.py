"""Revert, power, readiness, reboot and failure snapshots on simulator VMs."""

from __future__ import annotations

import threading

import pytest

from patchgate.errors import HypervisorError, LabTimeout
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.collector import retrieve_one
from patchgate.hypervisors.vsphere.simulator import Vcsim, set_guest

from .conftest import reset_guest, settings_for, unique, vm_spec

VM = "DC0_H0_VM1"


def current_snapshot(hv: VsphereHypervisor, name: str) -> str:
    info = retrieve_one(hv.si, hv.vm_ref(vm_spec(name)), ["snapshot"])["snapshot"]
    return info.currentSnapshot._moId


def test_revert_goes_to_the_named_snapshot_then_power_on(hv: VsphereHypervisor) -> None:
    lab, later = unique("lab"), unique("later")
    spec = vm_spec(VM, snapshot=lab)
    ref = hv.vm_ref(spec)
    lab_ref = hv.create_snapshot(ref, VM, lab)
    hv.create_snapshot(ref, VM, later)
    assert current_snapshot(hv, VM) != lab_ref._moId
    hv.waiter.run(lambda: ref.PowerOffVM_Task(), vm=VM, operation="power-off")  # as a real revert would

    snap = hv.revert(spec)

    assert snap.identifier == lab_ref._moId and snap.vm == VM and snap.name.endswith(lab)
    assert current_snapshot(hv, VM) == lab_ref._moId
    assert hv.power_state(spec) == "poweredOff"
    hv.power_on(spec)
    assert hv.power_state(spec) == "poweredOn"
    hv.power_on(spec)  # already on: nothing to do
    assert hv.power_state(spec) == "poweredOn"


def test_revert_keeps_a_running_vm_running(hv: VsphereHypervisor) -> None:
    """The simulator keeps the power state on revert (vCenter does too for memory snapshots)."""
    lab = unique("lab")
    spec = vm_spec(VM, snapshot=lab)
    hv.power_on(spec)
    hv.create_snapshot(hv.vm_ref(spec), VM, lab)
    hv.revert(spec)
    hv.power_on(spec)
    assert hv.power_state(spec) == "poweredOn"


def test_progress_listener_hears_about_the_revert(hv: VsphereHypervisor) -> None:
    lab = unique("lab")
    spec = vm_spec(VM, snapshot=lab)
    hv.create_snapshot(hv.vm_ref(spec), VM, lab)
    heard: list[tuple[str, str, int]] = []
    hv.on_progress = lambda vm, op, pct: heard.append((vm, op, pct))
    hv.revert(spec)
    assert (VM, "revert", 100) in heard


def test_ready_when_tools_heartbeat_and_ip_are_reported(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    hv.power_on(spec)
    reset_guest(hv, spec)
    waiter_result: dict[str, object] = {}

    def wait() -> None:
        try:
            waiter_result["endpoint"] = hv.wait_ready(spec, timeout=20)
        except Exception as exc:  # surfaced by the assertion below
            waiter_result["error"] = exc

    thread = threading.Thread(target=wait)
    thread.start()
    set_guest(hv, hv.vm_ref(spec), VM, tools="guestToolsRunning", state="running", heartbeat="green",
              ip="127.0.0.1", hostname="ws2025-member1")
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in waiter_result, waiter_result.get("error")
    endpoint = waiter_result["endpoint"]
    assert endpoint.address == "127.0.0.1" and endpoint.hostname == "ws2025-member1"  # type: ignore[attr-defined]


def test_gray_heartbeat_is_enough_when_tools_report_a_running_guest(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    hv.power_on(spec)
    reset_guest(hv, spec)
    set_guest(hv, hv.vm_ref(spec), VM, tools="guestToolsRunning", state="running", ip="127.0.0.2")
    assert hv.wait_ready(spec, timeout=10).address == "127.0.0.2"


def test_address_override_skips_the_ip_wait(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM, address="10.0.0.5")
    hv.power_on(spec)
    reset_guest(hv, spec)
    set_guest(hv, hv.vm_ref(spec), VM, tools="guestToolsRunning", heartbeat="green")
    assert hv.wait_ready(spec, timeout=10).address == "10.0.0.5"


def test_no_ip_times_out_naming_vm_and_condition(vcsim: Vcsim) -> None:
    hv = VsphereHypervisor(settings_for(vcsim, ip_timeout=1), vcsim.credentials, "t")
    try:
        spec = vm_spec(VM)
        hv.power_on(spec)
        reset_guest(hv, spec)
        set_guest(hv, hv.vm_ref(spec), VM, tools="guestToolsRunning", state="running", heartbeat="green")
        with pytest.raises(LabTimeout) as err:
            hv.wait_ready(spec, timeout=30)
        assert err.value.vm == VM and err.value.step == "ready"
        assert "no IP address within ip_timeout 1s" in str(err.value)
    finally:
        hv.close()


def test_overall_timeout_bounds_the_phase_timeouts(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    hv.power_on(spec)
    reset_guest(hv, spec)
    with pytest.raises(LabTimeout, match="no VMware Tools running within the ready timeout 1s"):
        hv.wait_ready(spec, timeout=1)


def test_powered_off_vm_is_not_waited_for(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    reset_guest(hv, spec)
    ref = hv.vm_ref(spec)
    hv.waiter.run(lambda: ref.PowerOffVM_Task(), vm=VM, operation="power-off")
    try:
        with pytest.raises(HypervisorError, match="powered off"):
            hv.wait_ready(spec, timeout=30)
    finally:
        hv.power_on(spec)


def test_reboot_falls_back_to_reset_on_the_simulator(hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    hv.power_on(spec)
    ref = hv.vm_ref(spec)
    before = retrieve_one(hv.si, ref, ["summary.runtime.bootTime"])["summary.runtime.bootTime"]
    hv.reboot(spec)
    after = retrieve_one(hv.si, ref, ["summary.runtime.bootTime"])["summary.runtime.bootTime"]
    assert after > before
    assert hv.power_state(spec) == "poweredOn"


def test_failure_snapshot_only_when_the_lab_asks(vcsim: Vcsim, hv: VsphereHypervisor) -> None:
    spec = vm_spec(VM)
    run_id = unique("run")
    assert hv.keep_failure_snapshot(spec, run_id) is None
    keeper = VsphereHypervisor(settings_for(vcsim, keep_failure_snapshot=True), vcsim.credentials, "t")
    try:
        name = keeper.keep_failure_snapshot(spec, run_id)
        assert name == f"patchgate-failure-{run_id}"
        assert keeper.snapshot(vm_spec(VM, snapshot=name)).name.endswith(name)
    finally:
        keeper.close()


def test_guest_info_drops_when_the_vm_is_reverted_or_powered_off(hv: VsphereHypervisor) -> None:
    """tools/vcsim makes guest info follow the VM as Tools would, so no stale 'ready' after a revert."""
    lab = unique("lab")
    spec = vm_spec(VM, snapshot=lab)
    ref = hv.vm_ref(spec)
    hv.power_on(spec)
    hv.create_snapshot(ref, VM, lab)
    paths = ["guest.toolsRunningStatus", "guest.ipAddress"]
    for action in (lambda: hv.revert(spec), lambda: hv.reboot(spec)):
        set_guest(hv, ref, VM, tools="guestToolsRunning", state="running", heartbeat="green", ip="127.0.0.1")
        assert retrieve_one(hv.si, ref, paths)["guest.toolsRunningStatus"] == "guestToolsRunning"
        action()
        after = retrieve_one(hv.si, ref, paths)
        assert after["guest.toolsRunningStatus"] == "guestToolsNotRunning"
        assert not after.get("guest.ipAddress")
