"""The twin as the guest OS of simulator VMs: revert, power and reset on the vSphere side drive the twin,
and the guest is reported back through the simulator as VMware Tools would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchgate.config.lab import Lab
from patchgate.errors import HypervisorError, LabTimeout
from patchgate.hypervisors.base import GuestEndpoint, Hypervisor
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.collector import retrieve_one
from patchgate.hypervisors.vsphere.simulator import Vcsim
from patchgate_twin.vsphere_guest import TwinGuestHypervisor, attach_twin_guest
from patchgate_twin.lab import TwinLab, build_twin_lab

from .conftest import settings_for

VMS = [("ws25-hp-01", "hotpatch-member", "ws2025-dc-hotpatch-oct2025", "baseline-2025-10", []),
       ("ws25-wsus-01", "wsus-server", "ws2025-dc-wsus-oct2025", "golden/baseline-2025-10", []),
       ("ws25-mbr-01", "member", "ws2025-std-member-oct2025", "baseline-2025-10", ["no-ip"])]


@pytest.fixture(scope="module")
def fresh_vcsim(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    """Its own simulator: this module renames VMs to lab names."""
    with Vcsim(binary=vcsim_binary, workdir=tmp_path_factory.mktemp("vcsim-twin")) as sim:
        yield sim


def make_lab(sim: Vcsim) -> Lab:
    settings = settings_for(sim, guests="twin", ip_timeout=2).model_dump(mode="json", exclude_none=True)
    return Lab.model_validate({
        "name": "vcsim-twin",
        "hypervisor": {"kind": "vsphere", "settings": settings},
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never"}},
        "secrets": {"kind": "env"},
        "vms": [{"name": n, "role": r, "image": i, "snapshot": s, "faults": f} for n, r, i, s, f in VMS],
    })


@pytest.fixture(scope="module")
def lab_parts(fresh_vcsim: Vcsim) -> Iterator[tuple[Lab, TwinLab, TwinGuestHypervisor]]:
    lab = make_lab(fresh_vcsim)
    twin = build_twin_lab(lab, [], durable=False, stop=threading.Event())
    ports = {name: 15985 + i for i, (name, *_rest) in enumerate(VMS)}
    inner = VsphereHypervisor(lab.hypervisor.settings, fresh_vcsim.credentials, lab.name)  # type: ignore[arg-type]
    hv = attach_twin_guest(inner, twin, lambda n: GuestEndpoint("127.0.0.1", port=ports[n], hostname=n))
    hv.connect()
    try:
        yield lab, twin, hv
    finally:
        hv.close()


def test_connect_prepares_lab_vms_and_snapshots(lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    lab, _twin, hv = lab_parts
    assert isinstance(hv, Hypervisor) and hv.kind == "vsphere"
    for spec in lab.vms:
        snap = hv.snapshot(spec)
        assert snap.name.endswith(spec.snapshot) and snap.identifier.startswith("snapshot-")
    assert hv.snapshot(lab.vm("ws25-wsus-01")).name == "golden/baseline-2025-10"


def test_revert_reverts_the_twin_and_the_guest_reports_ready(
        lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    lab, twin, hv = lab_parts
    spec = lab.vm("ws25-hp-01")
    before = twin.vm(spec.name).reverts
    hv.revert(spec)
    hv.power_on(spec)
    endpoint = hv.wait_ready(spec, timeout=20)
    assert twin.vm(spec.name).reverts == before + 1 and twin.vm(spec.name).powered_on
    assert endpoint.address == "127.0.0.1" and endpoint.port == 15985
    assert endpoint.hostname == twin.host(spec.name).computer_name
    guest = retrieve_one(hv.si, hv.vm_ref(spec), ["guest.ipAddress", "guest.toolsRunningStatus"])
    assert guest == {"guest.ipAddress": "127.0.0.1", "guest.toolsRunningStatus": "guestToolsRunning"}


def test_revert_throws_away_twin_changes(lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    lab, twin, hv = lab_parts
    spec = lab.vm("ws25-hp-01")
    hv.revert(spec)
    hv.wait_ready(spec, timeout=20)
    twin.host(spec.name).computer_name = "CHANGED-BY-RUN"
    hv.revert(spec)
    hv.wait_ready(spec, timeout=20)
    assert twin.host(spec.name).computer_name != "CHANGED-BY-RUN"


def test_reboot_reboots_the_twin_and_waits_for_it(
        lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    lab, twin, hv = lab_parts
    spec = lab.vm("ws25-wsus-01")
    hv.revert(spec)
    hv.wait_ready(spec, timeout=20)
    before = twin.vm(spec.name).reboots
    hv.reboot(spec)
    hv.wait_ready(spec, timeout=20)
    assert twin.vm(spec.name).reboots == before + 1
    assert ("ws25-wsus-01", "reset") in hv.guest.events  # type: ignore[union-attr]


def test_power_off_reaches_the_twin(lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    lab, twin, hv = lab_parts
    spec = lab.vm("ws25-hp-01")
    hv.revert(spec)
    hv.wait_ready(spec, timeout=20)
    ref = hv.vm_ref(spec)
    mark = len(hv.guest.events)  # type: ignore[union-attr]
    hv.waiter.run(lambda: ref.PowerOffVM_Task(), vm=spec.name, operation="power-off")
    with pytest.raises(HypervisorError, match="powered off"):
        hv.wait_ready(spec, timeout=5)
    assert hv.guest.wait_event(spec.name, "power-off", after=mark)  # type: ignore[union-attr]
    assert not twin.vm(spec.name).powered_on
    hv.power_on(spec)
    assert hv.wait_ready(spec, timeout=20).port == 15985
    assert twin.vm(spec.name).powered_on


def test_no_ip_fault_shows_as_a_readiness_timeout_on_the_ip(
        lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    lab, _twin, hv = lab_parts
    spec = lab.vm("ws25-mbr-01")
    hv.revert(spec)
    with pytest.raises(LabTimeout, match="no IP address within ip_timeout 2s"):
        hv.wait_ready(spec, timeout=20)


def test_reaper_works_through_the_wrapper(lab_parts: tuple[Lab, TwinLab, TwinGuestHypervisor]) -> None:
    from patchgate.hypervisors.vsphere import reap

    lab, _twin, hv = lab_parts
    spec = lab.vm("ws25-hp-01")
    hv.mark_in_use(spec, "live-run")
    (action,) = reap(hv, [spec])  # type: ignore[arg-type]
    assert action.outcome == "alive"
    hv.mark_in_use(spec, None)
