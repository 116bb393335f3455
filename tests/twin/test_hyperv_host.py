"""The engine's Hyper-V provider against the twin's Hyper-V hosts (real WSMan/PSRP on loopback, in this process):
VM identity by VMId across several hosts, checkpoints, restore jobs, readiness, the run tag in the Notes."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from support.reliability import FAULTY, HEALTHY, hyperv_lab_data  # noqa: E402

from patchgate.config.lab import Lab  # noqa: E402
from patchgate.errors import ConfigError, HypervisorError, LabTimeout  # noqa: E402
from patchgate.hypervisors.hyperv.provider import guest_address  # noqa: E402
from patchgate.run.components import LabComponents, build_components  # noqa: E402

pytestmark = pytest.mark.slow


def _lab(name: str, *, settings: dict[str, Any] | None = None, faults: list[str] | None = None) -> Lab:
    document = hyperv_lab_data(name, faults=faults)
    document["hypervisor"]["settings"].update(settings or {})
    return Lab.model_validate(document)


def _components(lab: Lab) -> LabComponents:
    components = build_components(lab, kind_catalogs=[], stop=threading.Event())
    components.hypervisor.connect()
    return components


def test_vms_are_found_by_vmid_on_the_host_that_has_them_and_restored_by_checkpoint_id() -> None:
    lab = _lab("hv-two-hosts", settings={"host": None, "hosts": [{"name": "hv-a"}, {"name": "hv-b"}],
                                         "vm_hosts": {HEALTHY: "hv-b"}})
    components = _components(lab)
    try:
        hv = components.hypervisor
        shell = components.handle.hyperv_host
        for name, host in ((FAULTY, "hv-a"), (HEALTHY, "hv-b")):
            vm = lab.vm(name)
            pool, vm_id = hv.locate(vm)
            assert (pool.name, vm_id) == (host, shell.vm_id(name))
            snap = hv.revert(vm)
            assert snap.extra["vm_id"] == vm_id and snap.extra["host"] == host
            assert snap.identifier == shell.vms[vm_id].checkpoints["baseline"]["Id"]
            assert hv.power_state(vm) == "poweredOff"  # a restore leaves the VM off; power_on starts it
            hv.power_on(vm)
            endpoint = hv.wait_ready(vm, 10)
            assert endpoint.address == "127.0.0.1" and endpoint.port  # the KVP address, the twin guest's port
            hv.mark_in_use(vm, "run-1")
            assert hv.run_tag(vm).run == "run-1"
            hv.mark_in_use(vm, None)
            assert hv.run_tag(vm) is None and shell.vms[vm_id].notes == ""
    finally:
        components.close()


def test_a_pinned_vmid_that_the_host_does_not_have_is_an_inventory_error() -> None:
    lab = _lab("hv-pinned", settings={"vm_ids": {FAULTY: "00000000-0000-0000-0000-000000000001"}})
    components = _components(lab)
    try:
        with pytest.raises(HypervisorError, match="no VM with VMId 00000000-0000-0000-0000-000000000001") as info:
            components.hypervisor.revert(lab.vm(FAULTY))
        assert info.value.step == "inventory" and info.value.vm == FAULTY
    finally:
        components.close()


def test_a_checkpoint_of_another_type_than_the_lab_asks_for_fails_the_revert_naming_both() -> None:
    lab = _lab("hv-type", settings={"checkpoint_type": "production"})
    components = _components(lab)
    try:
        shell = components.handle.hyperv_host  # its checkpoints are the lab's type; make this one a standard one
        shell.vms[shell.vm_id(FAULTY)].checkpoints["baseline"]["SnapshotType"] = "Standard"
        components.hypervisor.revert(lab.vm(HEALTHY))  # the other VM's production checkpoint is fine
        with pytest.raises(HypervisorError, match="is a Standard checkpoint; the lab asks for production"):
            components.hypervisor.revert(lab.vm(FAULTY))
    finally:
        components.close()


def test_the_readiness_wait_says_what_the_host_never_reported() -> None:
    lab = _lab("hv-kvp", faults=["no-kvp-ip"], settings={"ip_timeout": 1})
    components = _components(lab)
    try:
        vm = lab.vm(FAULTY)
        components.hypervisor.revert(vm)
        components.hypervisor.power_on(vm)
        with pytest.raises(LabTimeout, match="no IPv4 address through KVP"):
            components.hypervisor.wait_ready(vm, 5)
    finally:
        components.close()


def test_hyperv_faults_are_bad_input_outside_a_hyperv_lab() -> None:
    from patchgate_twin.lab import check_twin_inputs
    from support.reliability import lab_data

    with pytest.raises(ConfigError, match="'restore-fails' acts on a Hyper-V host"):
        check_twin_inputs(Lab.model_validate(lab_data("twin-bad", faults=["restore-fails"])), [])


@pytest.mark.parametrize(("addresses", "expected"), [
    (["fe80::1", "169.254.3.4", "10.0.0.5"], "10.0.0.5"),
    (["fe80::1"], None),
    (["not-an-address", "192.168.1.7"], "192.168.1.7"),
    ([], None),
])
def test_the_guest_address_is_its_first_routable_ipv4(addresses: list[str], expected: str | None) -> None:
    assert guest_address(addresses) == expected


def test_the_settings_name_their_mistakes() -> None:
    from pydantic import ValidationError

    from patchgate.hypervisors.hyperv.settings import HypervSettings

    with pytest.raises(ValidationError, match="name the Hyper-V host"):
        HypervSettings()
    with pytest.raises(ValidationError, match="'hv-x' is not one of the hosts"):
        HypervSettings(host="hv-1", vm_hosts={"a": "hv-x"})
    with pytest.raises(ValidationError, match="is not a VMId"):
        HypervSettings(host="hv-1", vm_ids={"a": "nope"})


def test_the_reaper_reverts_a_vm_whose_notes_name_a_run_that_is_gone() -> None:
    import socket
    import subprocess
    from datetime import UTC, datetime

    from patchgate.hypervisors.vsphere.reaper import reap
    from patchgate.hypervisors.vsphere.runtag import RunTag

    lab = _lab("hv-tags")
    components = _components(lab)
    try:
        hv = components.hypervisor.inner
        vm = lab.vm(FAULTY)
        pool, vm_id = hv.locate(vm)
        ended = subprocess.Popen(["true"])
        ended.wait(timeout=30)  # a process that has ended: its pid names no live run
        dead = RunTag(run="run-gone", host=socket.gethostname(), pid=ended.pid,
                      started=datetime.now(UTC).isoformat(timespec="seconds"))
        pool.run("hyperv-tag", vm=vm.name, step="test", VMId=vm_id, Prefix=hv.settings.run_tag_prefix,
                 Value=dead.to_json())
        components.handle.hyperv_host.vms[vm_id].notes += "\r\nowner: the lab team"  # the operator's own line
        assert hv.run_tag(vm) == dead
        actions = {a.vm: a for a in reap(hv, [vm, lab.vm(HEALTHY)])}
        assert actions[FAULTY].outcome == "reverted", actions[FAULTY]
        assert HEALTHY not in actions  # no tag: nothing to say
        assert hv.run_tag(vm) is None
        assert components.handle.hyperv_host.vms[vm_id].notes == "owner: the lab team"
    finally:
        components.close()
