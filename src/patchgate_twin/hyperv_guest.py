"""The twin behind a Hyper-V lab (``hypervisor.kind: hyperv`` with ``guests: twin``): it serves each Hyper-V host
of the lab file over WSMan/PSRP on 127.0.0.1 (patchgate_twin.hyperv_host) and plays the VMs' guests, and the
engine's own Hyper-V provider drives those hosts exactly as it drives real ones.

The provider learns a guest's address from KVP (127.0.0.1 on the twin); each twin guest listens on a port of its
own, so the provider's readiness answer is completed with that port here.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable

from patchgate.config.lab import Lab, VmSpec
from patchgate.hypervisors.base import GuestEndpoint, SnapshotRef
from patchgate.labkinds import LabParts
from patchgate_twin.hyperv_host import TwinHypervHost
from patchgate_twin.model import TIME_SCALE


class TwinGuestHyperv:
    """The engine's HypervHypervisor, with the twin guest's port filled into its readiness answer."""

    def __init__(self, inner: Any, endpoint_for: Callable[[str], GuestEndpoint]) -> None:
        self.inner = inner
        self.endpoint_for = endpoint_for
        self.kind = inner.kind
        self.cert_validation = inner.cert_validation
        self.guest_time_scale = TIME_SCALE  # the guests are the twin's: Windows time runs fast (docs/twin.md)

    def __getattr__(self, name: str) -> Any:  # settings, locate, run_tag, cancel, keep_failure_snapshots, ...
        return getattr(self.inner, name)

    def connect(self) -> None:
        self.inner.connect()

    def close(self) -> None:
        self.inner.close()

    def snapshot(self, vm: VmSpec) -> SnapshotRef:
        return self.inner.snapshot(vm)

    def revert(self, vm: VmSpec) -> SnapshotRef:
        return self.inner.revert(vm)

    def power_on(self, vm: VmSpec) -> None:
        self.inner.power_on(vm)

    def power_state(self, vm: VmSpec) -> str:
        return self.inner.power_state(vm)

    def wait_ready(self, vm: VmSpec, timeout: float) -> GuestEndpoint:
        reported = self.inner.wait_ready(vm, timeout)
        guest = self.endpoint_for(vm.name)
        return GuestEndpoint(address=reported.address, port=guest.port, hostname=guest.hostname)

    def reboot(self, vm: VmSpec) -> None:
        self.inner.reboot(vm)

    def mark_in_use(self, vm: VmSpec, run_id: str | None) -> None:
        self.inner.mark_in_use(vm, run_id)

    def keep_failure_snapshot(self, vm: VmSpec, run_id: str) -> str | None:
        return self.inner.keep_failure_snapshot(vm, run_id)


def host_of(lab: Lab, vm_name: str) -> str:
    settings = lab.hypervisor.settings
    return settings.vm_hosts.get(vm_name) or settings.all_hosts[0].name


def attach_hyperv_hosts(parts: LabParts, lab: Lab, twin: Any, guest_endpoints: Any,
                        endpoint_for: Callable[[str], GuestEndpoint], guest_credentials: Callable[[str], Any],
                        stop: threading.Event) -> LabParts:
    """Serve the lab's Hyper-V hosts from ``twin`` and give ``parts`` the engine's provider pointed at them (and,
    with ``remoting.kind: psdirect``, the engine's PowerShell Direct remoting through those hosts)."""
    from patchgate.hypervisors.hyperv.kind import psdirect_remoting
    from patchgate.hypervisors.hyperv.provider import HypervHypervisor, host_remoting
    from patchgate_twin.wsman import WSManEndpoint

    settings = lab.hypervisor.settings
    restarted = guest_endpoints.drop_shells if guest_endpoints is not None else None
    shell = TwinHypervHost(twin, lambda vm: host_of(lab, vm), checkpoint_type=settings.checkpoint_type,
                           on_guest_restart=restarted, guest_shell=parts.handle.shell,
                           guest_credentials=guest_credentials)
    credentials = parts.secrets.hypervisor_credentials()
    account = (credentials.username, credentials.password.get_secret_value())
    hosts = []
    for host in settings.all_hosts:
        vms = [vm.name for vm in [*lab.vms, *lab.control_vms] if host_of(lab, vm.name) == host.name]
        if any(twin.has_fault(vm, "host-unreachable") for vm in vms):
            port = _closed_port()  # the host's WinRM refuses every connection
        else:
            endpoint = WSManEndpoint(host.name, shell, lambda: account)
            port = endpoint.start()
            parts.closers.insert(0, endpoint.stop)
        hosts.append(host.model_copy(update={"address": "127.0.0.1", "port": port, "ssl": False}))
    served = settings.model_copy(update={"host": None, "hosts": hosts})
    direct = lab.remoting.kind == "psdirect"
    inner = HypervHypervisor(served, host_remoting(lab), credentials, lab.name, guest_addresses=not direct, stop=stop)
    parts.hypervisor = TwinGuestHyperv(inner, endpoint_for)  # type: ignore[assignment]
    if direct:  # the guests are reached through the host, not over WSMan: the twin serves no guest listener
        parts.remoting = psdirect_remoting(lab, inner)
    parts.handle.hyperv_host = shell
    return parts


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
