"""Build the hypervisor, remoting and secrets provider a lab file asks for."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchgate.config.lab import Lab
from patchgate.errors import ConfigError
from patchgate.hypervisors.base import GuestEndpoint, Hypervisor
from patchgate.remoting.base import Remoting
from patchgate.secrets.base import SecretsProvider

VAULT_FAULTS = ("vault-unreachable", "vault-sealed")


@dataclass
class LabComponents:
    hypervisor: Hypervisor
    remoting: Remoting
    secrets: SecretsProvider
    twin: Any = None  # patchgate_twin.lab.TwinLab when the twin plays the lab (or the guests)
    twin_shell: Any = None
    endpoints: Any = None  # patchgate_twin.wsman endpoints, one per twin VM

    @property
    def cert_validation(self) -> dict[str, bool]:
        return {"hypervisor": bool(getattr(self.hypervisor, "cert_validation", True)),
                "remoting": bool(getattr(self.remoting, "cert_validation", True)),
                "secrets": bool(getattr(self.secrets, "cert_validation", True))}

    def close(self) -> None:
        for closer in (getattr(self.endpoints, "stop_all", None), self.hypervisor.close, self.secrets.close,
                       getattr(self.twin, "close", None)):
            if closer is None:
                continue
            try:
                closer()
            except Exception:  # closing one part must not keep the others open
                pass


def twin_in_own_process(lab: Lab) -> bool:
    """The twin's hosts answer from their own process when the harness reaches them over WSMan, as a real lab's
    would; in-process remoting and the vSphere simulator's guests act on them directly."""
    return (lab.hypervisor.kind == "twin" and lab.remoting.kind == "psrp"
            and bool(lab.hypervisor.settings.own_process))


def start_twin_process(lab: Lab, twin_catalogs: list[Path], *, inputs_checked: bool) -> Any:
    """Fork the twin's process for ``lab`` (a ``patchgate_twin.process.TwinProcess``). With ``inputs_checked``
    (the lab's twin catalogue and images were validated already: ``patchgate validate`` does) the child loads
    them itself while the harness goes on building the run's other components."""
    from patchgate_twin.lab import check_twin_inputs
    from patchgate_twin.process import TwinProcess

    catalog = None if inputs_checked else check_twin_inputs(lab, twin_catalogs)
    return TwinProcess(lab, catalog, twin_catalogs=[str(f) for f in twin_catalogs])


def build_components(lab: Lab, *, twin_catalogs: list[Path], stop: threading.Event,
                     twin_inputs_checked: bool = False, twin_process: Any = None) -> LabComponents:
    """The run's hypervisor, remoting and secrets. ``twin_inputs_checked``: see ``start_twin_process``.
    ``twin_process``: the twin's process handed over for this lab (``patchgate_twin.handoff``; the components
    close it from here on); otherwise it is started here when the lab needs one."""
    from patchgate.remoting import build_remoting
    from patchgate.secrets import build_secrets

    own_process = twin_in_own_process(lab)
    if own_process and twin_process is None:  # first: the child starts loading while the rest is built
        twin_process = start_twin_process(lab, twin_catalogs, inputs_checked=twin_inputs_checked)
    try:
        secrets = build_secrets(lab.secrets, lab)
    except BaseException:
        if twin_process is not None:  # bad secrets settings leave no twin process behind
            twin_process.close()
        raise
    twin = shell = endpoints = None
    uses_twin = lab.hypervisor.kind == "twin" or (
        lab.hypervisor.kind == "vsphere" and lab.hypervisor.settings.twin_guest)
    if twin_process is not None:
        twin_process.stop_with(stop)
    try:
        remoting: Remoting | None = None if lab.remoting.kind == "inprocess" else build_remoting(lab.remoting)
    except BaseException:
        if twin_process is not None:  # a bad remoting setting leaves no twin process behind
            twin_process.close()
        raise
    if twin_process is not None:
        from patchgate_twin.process import RemoteTwinLab

        twin = RemoteTwinLab(lab, twin_process.ready())
    elif uses_twin:
        from patchgate_twin.lab import build_twin_lab
        from patchgate_twin.shell_impl import TwinShell

        twin = build_twin_lab(lab, twin_catalogs, stop=stop)
        shell = TwinShell(twin)
    elif twin_catalogs:
        raise ConfigError("--twin-catalog only applies to labs served by the twin", file=str(lab.source))
    lab_secrets = secrets  # what the twin's hosts know of their own accounts: never through an injected fault
    if twin is not None and any(twin.has_fault(vm.name, kind) for vm in lab.vms for kind in VAULT_FAULTS):
        from patchgate_twin.vault_faults import VaultFaultSecrets

        secrets = VaultFaultSecrets(secrets, twin)

    if remoting is None:
        from patchgate_twin.inprocess_remoting import InProcessRemoting

        remoting = InProcessRemoting(shell)

    if uses_twin and lab.remoting.kind == "psrp":
        def host_credentials(vm_name: str) -> Any:
            creds = lab_secrets.remoting_credentials(lab.vm(vm_name))
            if twin is not None and twin.has_fault(vm_name, "auth-failure"):
                # twin fault 'auth-failure': the host's password is not the one the lab's secrets hold
                return (creds.username, "twin-fault-auth-failure")
            return creds

        if own_process:
            from patchgate_twin.process import RemoteEndpoints

            endpoints = RemoteEndpoints(twin.process, host_credentials)  # type: ignore[union-attr]
        else:
            from patchgate_twin.wsman import TwinEndpoints

            latency = lab.hypervisor.settings.latency.wsman_round_trip if lab.hypervisor.kind == "twin" else 0.0
            endpoints = TwinEndpoints(shell, host_credentials, latency=latency)

    def endpoint_for(vm_name: str) -> GuestEndpoint:
        if lab.remoting.kind == "psrp" and endpoints is not None:
            if twin is not None and twin.has_fault(vm_name, "unreachable"):
                return GuestEndpoint(address="127.0.0.1", port=_closed_port(), hostname=vm_name)
            port = endpoints.start(vm_name)
            return GuestEndpoint(address="127.0.0.1", port=port, hostname=vm_name)
        return GuestEndpoint(address="127.0.0.1", hostname=vm_name)

    if lab.hypervisor.kind == "twin":
        from patchgate_twin.hypervisor import TwinHypervisor

        # in its own process the twin drops a restarted guest's shells itself
        restarted = endpoints.drop_shells if endpoints is not None and not own_process else None
        hypervisor: Hypervisor = TwinHypervisor(twin, endpoint_for, on_guest_restart=restarted)
    elif lab.hypervisor.kind == "vsphere":
        from patchgate.hypervisors.vsphere import VsphereHypervisor

        hypervisor = VsphereHypervisor(lab.hypervisor.settings, secrets.hypervisor_credentials(), lab.name)
        if twin is not None:
            from patchgate_twin.vsphere_guest import attach_twin_guest

            hypervisor = attach_twin_guest(hypervisor, twin, endpoint_for)
    else:
        raise ConfigError("the hyperv hypervisor kind is planned but not available yet; use twin or vsphere",
                          file=str(lab.source), field="hypervisor.kind")
    return LabComponents(hypervisor=hypervisor, remoting=remoting, secrets=secrets, twin=twin, twin_shell=shell,
                         endpoints=endpoints)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the with-block ends: connections are refused
