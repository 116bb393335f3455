"""VM and snapshot lookup: found exactly once, or a clear error listing what exists."""

from __future__ import annotations

import pytest
from pyVmomi import vim

from patchgate.errors import HypervisorError
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.collector import retrieve_one

from .conftest import unique, vm_spec


def test_missing_vm_is_named_with_similar_names(hv: VsphereHypervisor) -> None:
    with pytest.raises(HypervisorError) as err:
        hv.vm_ref(vm_spec("DC0_H0_VM9"))
    message = str(err.value)
    assert "no VM named 'DC0_H0_VM9'" in message and "DC0_H0_VM0" in message
    assert err.value.vm == "DC0_H0_VM9"


def test_datacenter_scope_and_unknown_datacenter(vcsim, hv: VsphereHypervisor) -> None:  # type: ignore[no-untyped-def]
    from .conftest import settings_for

    scoped = VsphereHypervisor(settings_for(vcsim, datacenter="DC0"), vcsim.credentials, "t")
    try:
        assert scoped.vm_ref(vm_spec("DC0_H0_VM0"))._moId == hv.vm_ref(vm_spec("DC0_H0_VM0"))._moId
    finally:
        scoped.close()
    wrong = VsphereHypervisor(settings_for(vcsim, datacenter="DC9"), vcsim.credentials, "t")
    try:
        with pytest.raises(HypervisorError, match="datacenter 'DC9' not found.*DC0"):
            wrong.vm_ref(vm_spec("DC0_H0_VM0"))
    finally:
        wrong.close()


def test_duplicate_vm_names_are_ambiguous_and_inventory_path_resolves(hv: VsphereHypervisor) -> None:
    name = unique("twin")
    source = hv.vm_ref(vm_spec("DC0_H0_VM0"))
    props = retrieve_one(hv.si, source, ["parent", "resourcePool"])
    vm_folder = props["parent"]
    folder = vm_folder.CreateFolder(unique("dup"))
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=props["resourcePool"]), powerOn=False)
    for target in (vm_folder, folder):
        hv.waiter.run(lambda t=target: source.CloneVM_Task(folder=t, name=name, spec=spec), vm=name,
                      operation="clone")
    with pytest.raises(HypervisorError) as err:
        hv.vm_ref(vm_spec(name))
    message = str(err.value)
    assert "2 VMs are named" in message and "inventory_path" in message
    assert f"DC0/vm/{name}" in message and f"DC0/vm/{folder.name}/{name}" in message

    by_path = hv.vm_ref(vm_spec(name, inventory_path=f"DC0/vm/{folder.name}/{name}"))
    assert retrieve_one(hv.si, by_path, ["parent"])["parent"]._moId == folder._moId


def test_missing_inventory_path(hv: VsphereHypervisor) -> None:
    with pytest.raises(HypervisorError, match="no VM at inventory path 'DC0/vm/nowhere/X'"):
        hv.vm_ref(vm_spec("X", inventory_path="DC0/vm/nowhere/X"))


def test_inventory_path_to_a_folder_is_refused(hv: VsphereHypervisor) -> None:
    with pytest.raises(HypervisorError, match="not a virtual machine"):
        hv.vm_ref(vm_spec("X", inventory_path="DC0/vm"))


def test_missing_snapshot_lists_existing_ones(hv: VsphereHypervisor) -> None:
    spec = vm_spec("DC0_H0_VM0", snapshot=unique("absent"))
    present = unique("present")
    hv.create_snapshot(hv.vm_ref(spec), spec.name, present)
    with pytest.raises(HypervisorError) as err:
        hv.snapshot(spec)
    assert f"snapshot '{spec.snapshot}' not found" in str(err.value) and present in str(err.value)


def test_duplicate_snapshot_names_are_ambiguous(hv: VsphereHypervisor) -> None:
    name = unique("dup")
    spec = vm_spec("DC0_H0_VM0", snapshot=name)
    ref = hv.vm_ref(spec)
    first = hv.create_snapshot(ref, spec.name, name)
    second = hv.create_snapshot(ref, spec.name, name)
    with pytest.raises(HypervisorError) as err:
        hv.snapshot(spec)
    message = str(err.value)
    assert "ambiguous, 2 match" in message
    assert first._moId in message and second._moId in message
    # a path through the tree tells them apart
    assert hv.snapshot(vm_spec(spec.name, snapshot=f"{name}/{name}")).identifier == second._moId


def test_snapshot_paths_relative_and_anchored(hv: VsphereHypervisor) -> None:
    parent, child = unique("parent"), unique("child")
    spec = vm_spec("DC0_H0_VM0")
    ref = hv.vm_ref(spec)
    parent_ref = hv.create_snapshot(ref, spec.name, parent)
    child_ref = hv.create_snapshot(ref, spec.name, child)
    by_name = hv.snapshot(vm_spec(spec.name, snapshot=child))
    assert by_name.identifier == child_ref._moId and by_name.name.endswith(f"{parent}/{child}")
    assert hv.snapshot(vm_spec(spec.name, snapshot=f"{parent}/{child}")).identifier == child_ref._moId
    assert hv.snapshot(vm_spec(spec.name, snapshot=parent)).identifier == parent_ref._moId
    with pytest.raises(HypervisorError, match="not found"):
        hv.snapshot(vm_spec(spec.name, snapshot=f"/{child}"))  # anchored: child is not a root snapshot
