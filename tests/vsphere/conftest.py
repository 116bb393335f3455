"""A real vSphere API for the provider's tests: govmomi's vCenter simulator on 127.0.0.1.

The binary is built once (tools/vcsim/build.sh caches it) and one simulator serves the session; it is
stopped by its pid. Tests that change VM state use their own snapshot names and reset the guest info of
the VM they use, so they do not depend on each other's order. A missing Go toolchain fails the tests:
the vSphere provider is never left untested silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchgate.config.lab import VmSpec
from patchgate.hypervisors.vsphere.settings import VsphereSettings
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.simulator import Vcsim, set_guest

VM_NAMES = ("DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1")


@pytest.fixture(scope="session")
def vcsim(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    sim = Vcsim(binary=vcsim_binary, workdir=tmp_path_factory.mktemp("vcsim"))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def settings_for(sim: Vcsim, **overrides: object) -> VsphereSettings:
    values: dict[str, object] = dict(url=sim.url, ca_bundle=sim.cert_path, tools_timeout=5,
                                     heartbeat_timeout=5, ip_timeout=5, task_timeout=30)
    values.update(overrides)
    return VsphereSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def hv(vcsim: Vcsim) -> Iterator[VsphereHypervisor]:
    hypervisor = VsphereHypervisor(settings_for(vcsim), vcsim.credentials, "vcsim-test")
    hypervisor.connect()
    try:
        yield hypervisor
    finally:
        hypervisor.close()


def vm_spec(name: str, snapshot: str = "base", **extra: object) -> VmSpec:
    return VmSpec(name=name, role="member", snapshot=snapshot, **extra)  # type: ignore[arg-type]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def reset_guest(hv: VsphereHypervisor, spec: VmSpec) -> None:
    """Guest info as a freshly booted VM without Tools reports it."""
    set_guest(hv, hv.vm_ref(spec), spec.name, ip="", hostname="", tools="guestToolsNotRunning",
              state="notRunning", heartbeat="gray")
