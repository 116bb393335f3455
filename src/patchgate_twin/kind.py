"""The twin as a lab kind: what the engine gets when a lab file says ``hypervisor.kind: twin`` (or lets the twin
play a simulator vCenter's guests with ``guests: twin``).

The engine finds this object through its registry of lab kinds (``patchgate.labkinds``; registered in
pyproject.toml's ``patchgate.lab_kinds`` entry points) and never imports the twin. Everything twin-shaped is
decided here: the twin's own process and its WinRM listeners, the faults a lab file injects (a wrong password,
a closed port, an unreachable Vault, a rival run's lease), and the noise seed a run records.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from patchgate.config.lab import Lab
from patchgate.errors import LabError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.labkinds import BaseLabKind, KindOptions, LabParts
from patchgate.secrets.base import SecretsProvider
from patchgate_twin.settings import TwinHypervisorSettings, TwinSecretsSettings

VAULT_FAULTS = ("vault-unreachable", "vault-sealed")


@dataclass
class TwinHandle:
    """What the twin kind keeps of a run (``LabComponents.handle``): for the twin's tests, tools and faults."""

    lab: Any  # TwinLab, or RemoteTwinLab when the twin runs in its own process
    shell: Any = None  # TwinShell (in-process only)
    endpoints: Any = None  # the hosts' WinRM listeners (TwinEndpoints or RemoteEndpoints)
    hyperv_host: Any = None  # the twin's Hyper-V host model (Hyper-V labs only)

    def has_fault(self, vm: str, kind: str) -> bool:
        return bool(self.lab.has_fault(vm, kind))


def in_own_process(lab: Lab) -> bool:
    """The twin's hosts answer from their own process when the harness reaches them over WSMan, as a real lab's
    would; in-process remoting and the vSphere simulator's guests act on them directly."""
    return (lab.hypervisor.kind == "twin" and lab.remoting.kind == "psrp"
            and bool(lab.hypervisor.settings.own_process))


class TwinKind(BaseLabKind):
    name = "twin"
    reads_catalogs = True
    settings_model = TwinHypervisorSettings
    secrets_model = TwinSecretsSettings  # per-run accounts the twin's hosts accept (secrets.kind: twin)
    remoting_kinds = ("inprocess",)  # unit tests: the twin's shell called directly, no network
    simulates_guests = True
    needs_hypervisor_login = False

    def kept_vm_hint(self, vm: dict[str, Any]) -> str | None:
        return "left changed (not restored), its twin disk is kept in the state folder (PATCHGATE_STATE_DIR)"

    def prepare(self, lab: Lab, *, seed: int | None, fresh_seed: int | None) -> Lab:
        from patchgate_twin.noise import seeded

        return seeded(lab, explicit=seed, fresh=fresh_seed)

    def check_inputs(self, lab: Lab, options: KindOptions) -> Any:
        from patchgate_twin.lab import check_twin_inputs

        return check_twin_inputs(lab, options.catalogs)  # twin files and images: exit 4

    def build_secrets(self, model: Any) -> SecretsProvider:
        from patchgate_twin.secrets import TwinSecretsProvider

        return TwinSecretsProvider()

    def run_facts(self, lab: Lab) -> dict[str, Any]:
        from patchgate_twin.noise import noise_facts

        return noise_facts(lab)

    # ------------------------------------------------------------ the hypervisor

    def build(self, lab: Lab, secrets: SecretsProvider, options: KindOptions,
              stop: threading.Event) -> LabParts:
        from patchgate_twin.hypervisor import TwinHypervisor

        if not options.inject_faults:  # the reaper: the twin's disks, no process, no faults
            from patchgate_twin.lab import build_twin_lab

            twin = build_twin_lab(lab, options.catalogs, durable=True, inject_faults=False)
            hypervisor = TwinHypervisor(twin, lambda vm: GuestEndpoint(address="127.0.0.1", hostname=vm))
            return LabParts(hypervisor=hypervisor, secrets=secrets, handle=TwinHandle(twin),
                            changed_vms=lambda: _changed_disks(twin))
        if in_own_process(lab):
            return self._own_process(lab, secrets, options, stop)
        parts = LabParts(hypervisor=None, secrets=secrets)  # type: ignore[arg-type]
        twin, endpoints = self._serve_in_process(parts, lab, options, stop,
                                                 latency=lab.hypervisor.settings.latency.wsman_round_trip)
        restarted = endpoints.drop_shells if endpoints is not None else None
        parts.hypervisor = TwinHypervisor(twin, _endpoint_for(lab, twin, endpoints), on_guest_restart=restarted)
        return parts

    def _own_process(self, lab: Lab, secrets: SecretsProvider, options: KindOptions,
                     stop: threading.Event) -> LabParts:
        from patchgate_twin.hypervisor import TwinHypervisor
        from patchgate_twin.lab import check_twin_inputs
        from patchgate_twin.process import RemoteEndpoints, RemoteTwinLab, TwinProcess

        catalog = None if options.inputs_checked else check_twin_inputs(lab, options.catalogs)
        process = TwinProcess(lab, catalog, twin_catalogs=[str(f) for f in options.catalogs])
        try:
            process.stop_with(stop)
            twin = RemoteTwinLab(lab, process.ready())
            endpoints = RemoteEndpoints(process, _host_credentials(lab, secrets, twin))
        except BaseException:
            process.close()
            raise
        # in its own process the twin drops a restarted guest's shells itself
        hypervisor = TwinHypervisor(twin, _endpoint_for(lab, twin, endpoints))
        return LabParts(hypervisor=hypervisor, secrets=_fault_secrets(secrets, twin, lab),
                        handle=TwinHandle(twin, endpoints=endpoints), before_leases=twin.hold_leases,
                        before_check=WorkerDies(twin), remoting_counters=endpoints.counters,
                        closers=[endpoints.stop_all, twin.close])

    @staticmethod
    def _serve_in_process(parts: LabParts, lab: Lab, options: KindOptions, stop: threading.Event, *,
                          latency: float) -> tuple[Any, Any]:
        """The twin's hosts in this process, served to ``parts``: over WSMan listeners (psrp remoting) or called
        directly (inprocess remoting), with the twin's faults and hooks. Returns (the twin lab, its listeners)."""
        from patchgate_twin.lab import build_twin_lab
        from patchgate_twin.shell_impl import TwinShell

        twin = build_twin_lab(lab, options.catalogs, durable=True, stop=stop,
                              inject_faults=options.inject_faults)
        shell = TwinShell(twin)
        accounts = parts.secrets
        parts.secrets = _fault_secrets(accounts, twin, lab)
        handle = parts.handle = TwinHandle(twin, shell)
        parts.before_leases = twin.hold_leases
        parts.before_check = WorkerDies(twin)
        parts.changed_vms = lambda: _changed_disks(twin)
        parts.closers.append(twin.close)
        if lab.remoting.kind != "psrp":
            from patchgate_twin.inprocess_remoting import InProcessRemoting

            parts.remoting = InProcessRemoting(shell)
            return twin, None
        from patchgate_twin.wsman import TwinEndpoints

        endpoints = handle.endpoints = TwinEndpoints(shell, _host_credentials(lab, accounts, twin), latency=latency)
        parts.remoting_counters = endpoints.counters
        parts.closers.insert(0, endpoints.stop_all)
        return twin, endpoints

    # ------------------------------------------------------------ the guests of a simulator vCenter

    def attach_guests(self, parts: LabParts, lab: Lab, options: KindOptions, stop: threading.Event) -> LabParts:
        from patchgate_twin.vsphere_guest import attach_twin_guest

        accounts = parts.secrets
        twin, endpoints = self._serve_in_process(parts, lab, options, stop, latency=0.0)
        if lab.hypervisor.kind == "hyperv":  # the twin serves the Hyper-V hosts too; the engine's provider drives them
            from patchgate_twin.hyperv_guest import attach_hyperv_hosts

            return attach_hyperv_hosts(parts, lab, twin, endpoints, _endpoint_for(lab, twin, endpoints),
                                       _host_credentials(lab, accounts, twin), stop)
        parts.hypervisor = attach_twin_guest(parts.hypervisor, twin, _endpoint_for(lab, twin, endpoints))  # type: ignore[arg-type]
        return parts


class WorkerDies:
    """Twin fault 'worker-dies': the pytest-xdist worker running this VM's checks exits hard in the middle of
    them (its second check), once per run. The VM is left changed; the controller reaps it (patchgate_pytest.checks)."""

    def __init__(self, twin: Any) -> None:
        self.twin = twin
        self.seen: dict[str, int] = {}

    def __call__(self, vm_name: str, ledger: Any, in_worker: bool) -> None:
        if not self.twin.has_fault(vm_name, "worker-dies"):
            return
        if not in_worker:
            raise LabError("twin fault 'worker-dies' acts only under pytest-xdist (add '-- -n 2' to patchgate "
                           "validate); without workers there is no worker to lose", vm=vm_name, step="worker")
        self.seen[vm_name] = self.seen.get(vm_name, 0) + 1
        if self.seen[vm_name] < 2 or ledger is None:
            return
        if f'"fault": "worker-dies", "vm": "{vm_name}"' in ledger.path.read_text(encoding="utf-8"):
            return  # the replacement worker: the fault fired once already
        ledger.record("fault", fault="worker-dies", vm=vm_name)
        os._exit(70)


def _fault_secrets(secrets: SecretsProvider, twin: Any, lab: Lab) -> SecretsProvider:
    """Twin faults 'vault-unreachable' and 'vault-sealed': the lab's secrets fail as a broken Vault's would."""
    if any(twin.has_fault(vm.name, kind) for vm in lab.vms for kind in VAULT_FAULTS):
        from patchgate_twin.vault_faults import VaultFaultSecrets

        return VaultFaultSecrets(secrets, twin)
    return secrets


def _host_credentials(lab: Lab, secrets: SecretsProvider, twin: Any) -> Any:
    """What each twin host accepts at login: the lab's own account (never through an injected fault)."""

    def host_credentials(vm_name: str) -> Any:
        creds = secrets.remoting_credentials(lab.vm(vm_name))
        if twin.has_fault(vm_name, "auth-failure"):
            return (creds.username, "twin-fault-auth-failure")  # the host's password is not the lab's
        return creds

    return host_credentials


def _endpoint_for(lab: Lab, twin: Any, endpoints: Any) -> Any:
    def endpoint_for(vm_name: str) -> GuestEndpoint:
        if endpoints is None:
            return GuestEndpoint(address="127.0.0.1", hostname=vm_name)
        if twin.has_fault(vm_name, "unreachable"):
            return GuestEndpoint(address="127.0.0.1", port=_closed_port(), hostname=vm_name)
        return GuestEndpoint(address="127.0.0.1", port=endpoints.start(vm_name), hostname=vm_name)

    return endpoint_for


def _changed_disks(twin: Any) -> dict[str, str]:
    return {name: "its twin disk is not at its snapshot" for name, vm in twin.vms.items() if vm.dirty}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the with-block ends: connections are refused


KIND = TwinKind()
