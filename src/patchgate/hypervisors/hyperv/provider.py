"""HypervHypervisor: the lifecycle's hypervisor verbs on Hyper-V hosts, through the Hyper-V module over PSRP.

A VM is known by its VMId (a GUID): looked up once by name (or by the id the lab file pins in ``vm_ids``) on the
lab's hosts, then every operation names it by id, so a renamed or re-created VM of the same name is never
mistaken for it. Checkpoints are resolved by name to their id before a restore.

Checkpoint types (https://learn.microsoft.com/virtualization/hyper-v-on-windows/user-guide/checkpoints):
a *standard* checkpoint holds the VM's memory, so a VM checkpointed while running comes back saved and resumes
on start; a *production* checkpoint is taken with VSS in the guest and holds no memory, so the VM comes back
off. Either way patchgate turns the VM off before the restore (``Stop-VM -TurnOff``: its changes are discarded
anyway) and starts it after (``Start-VM``), then waits for the heartbeat and the KVP address.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import Any

from patchgate.config.lab import PsrpSettings, VmSpec
from patchgate.errors import ConfigError, HypervisorError, LabTimeout
from patchgate.hypervisors.base import GuestEndpoint, SnapshotRef
from patchgate.hypervisors.hyperv.hosts import HostPool
from patchgate.hypervisors.hyperv.settings import HypervSettings
from patchgate.hypervisors.vsphere.runtag import RunTag
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

log = logging.getLogger("patchgate.hypervisors.hyperv")

FAILURE_CHECKPOINT_PREFIX = "patchgate-failure-"
HEARTBEAT_OK = ("OK",)  # PrimaryStatusDescription of a healthy heartbeat [U]
POWER_STATES = {"Running": "poweredOn", "Off": "poweredOff", "Saved": "suspended", "Paused": "suspended"}
SESSIONS_PER_HOST = 4


class HypervHypervisor:
    """Implements ``patchgate.hypervisors.base.Hypervisor`` for one or more Hyper-V hosts."""

    kind = "hyperv"

    def __init__(self, settings: HypervSettings, remoting: PsrpSettings, credentials: Credentials,
                 lab_name: str, *, guest_addresses: bool = True, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.guest_addresses = guest_addresses  # false with PowerShell Direct: the guest is reached via its host
        self.lab_name = lab_name
        self.cert_validation = bool(settings.cert_validation and any(
            (h.ssl if h.ssl is not None else remoting.ssl) for h in settings.all_hosts))
        redactor.register(credentials.password.get_secret_value())
        remoting = remoting.model_copy(update={"cert_validation": settings.cert_validation})
        self.hosts = {h.name: HostPool(h, remoting, credentials, per_host=SESSIONS_PER_HOST)
                      for h in settings.all_hosts}
        self._ids: dict[str, tuple[str, str]] = {}  # VM name -> (host, VMId)
        self._lock = threading.Lock()
        self.cancel_event = stop or threading.Event()  # the run's stop: a readiness wait ends when the run stops
        self.host_facts: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ session

    def connect(self) -> None:
        """Reach every host and check it has the Hyper-V module (a host that fails breaks the run: exit 2)."""
        for name, pool in self.hosts.items():
            if name in self.host_facts:
                continue
            facts = pool.run("hyperv-host", vm=None, step="connect")
            if not facts.get("module"):
                raise HypervisorError(f"Hyper-V host {name}: the Hyper-V PowerShell module is not installed "
                                      "(Install-WindowsFeature Hyper-V-PowerShell)", step="connect", host=name)
            self.host_facts[name] = facts
            log.info("Hyper-V host %s reachable (%s)", name, facts.get("host"))

    def close(self) -> None:
        for pool in self.hosts.values():
            pool.close()

    def cancel(self) -> None:
        self.cancel_event.set()

    # ------------------------------------------------------------------ identity

    def locate(self, vm: VmSpec) -> tuple[HostPool, str]:
        """The VM's host and VMId, found once per run."""
        with self._lock:
            found = self._ids.get(vm.name)
        if found is None:
            found = self._find(vm)
            with self._lock:
                self._ids[vm.name] = found
        return self.hosts[found[0]], found[1]

    def located(self, vm_name: str) -> tuple[HostPool, str]:
        """The host and VMId of a VM this run has looked up already (PowerShell Direct opens its session there)."""
        with self._lock:
            found = self._ids.get(vm_name)
        if found is None:
            raise HypervisorError("the VM was not looked up on its Hyper-V host before its guest session",
                                  vm=vm_name, step="connect")
        return self.hosts[found[0]], found[1]

    def _find(self, vm: VmSpec) -> tuple[str, str]:
        pinned = self.settings.vm_ids.get(vm.name)
        names = [self.settings.vm_hosts[vm.name]] if vm.name in self.settings.vm_hosts else list(self.hosts)
        matches: list[tuple[str, dict[str, Any]]] = []
        for host in names:
            doc = self.hosts[host].run("hyperv-find", vm=vm.name, step="inventory", Name=vm.name,
                                       VMId=pinned or "")
            matches += [(host, found) for found in doc.get("vms") or []]
        if not matches:
            what = f"with VMId {pinned}" if pinned else f"named '{vm.name}'"
            raise HypervisorError(f"no VM {what} on Hyper-V host(s) {', '.join(names)}", vm=vm.name,
                                  step="inventory")
        if len(matches) > 1:
            where = ", ".join(f"{host} ({found.get('VMId')})" for host, found in matches)
            raise HypervisorError(f"VM name '{vm.name}' is ambiguous: {where}; pin one in "
                                  "hypervisor.settings.vm_ids or vm_hosts", vm=vm.name, step="inventory")
        host, found = matches[0]
        if pinned and found.get("Name") != vm.name:
            raise HypervisorError(f"VMId {pinned} on {host} is named '{found.get('Name')}', not '{vm.name}'",
                                  vm=vm.name, step="inventory")
        return host, str(found["VMId"]).lower()

    # ------------------------------------------------------------------ checkpoints

    def snapshot(self, vm: VmSpec) -> SnapshotRef:
        return self._checkpoint(vm, "snapshot")

    def _checkpoint(self, vm: VmSpec, step: str) -> SnapshotRef:
        """The VM's checkpoint named ``vm.snapshot``: exactly one, of the type the lab asks for."""
        pool, vm_id = self.locate(vm)
        doc = pool.run("hyperv-checkpoints", vm=vm.name, step=step, VMId=vm_id, Name=vm.snapshot)
        found = [c for c in doc.get("checkpoints") or [] if c.get("Name") == vm.snapshot]
        if not found:
            raise HypervisorError(f"checkpoint '{vm.snapshot}' not found on VM {vm_id} (host {pool.name})",
                                  vm=vm.name, step=step)
        if len(found) > 1:
            when = ", ".join(str(c.get("CreationTime")) for c in found)
            raise HypervisorError(f"checkpoint name '{vm.snapshot}' is ambiguous ({len(found)} checkpoints, "
                                  f"created {when}); rename all but one", vm=vm.name, step=step)
        checkpoint = found[0]
        kind = str(checkpoint.get("SnapshotType") or "")
        wanted = self.settings.checkpoint_type
        if wanted != "any" and not kind.lower().startswith(wanted):
            raise HypervisorError(f"checkpoint '{vm.snapshot}' is a {kind or 'unknown'} checkpoint; the lab "
                                  f"asks for {wanted} (hypervisor.settings.checkpoint_type)", vm=vm.name,
                                  step=step)
        return SnapshotRef(vm=vm.name, name=vm.snapshot, identifier=str(checkpoint["Id"]),
                           extra={"vm_id": vm_id, "host": pool.name, "checkpoint_type": kind,
                                  "created": str(checkpoint.get("CreationTime") or "")})

    def revert(self, vm: VmSpec) -> SnapshotRef:
        """Turn the VM off, restore its checkpoint as a host job and wait for the job (``job_timeout``)."""
        snap = self._checkpoint(vm, "revert")
        pool, vm_id = self.locate(vm)
        timeout = self.settings.job_timeout
        doc = pool.run("hyperv-restore", vm=vm.name, step="revert", timeout=timeout + 60, VMId=vm_id,
                       CheckpointId=snap.identifier, TimeoutSeconds=int(timeout))
        job = str(doc.get("job"))
        errors = "; ".join(str(e) for e in doc.get("errors") or [])
        if job == "Running":
            raise LabTimeout(f"the restore job of checkpoint '{snap.name}' was still running after {timeout:g}s "
                             f"(host {pool.name})", vm=vm.name, step="revert")
        if job != "Completed" or errors:
            raise HypervisorError(f"restore of checkpoint '{snap.name}' failed on host {pool.name}: job {job}"
                                  f"{': ' + errors if errors else ''}", vm=vm.name, step="revert")
        log.info("vm %s: restored checkpoint %s (%s) on %s; now %s", vm.name, snap.name, snap.identifier,
                 pool.name, doc.get("State"))
        return snap

    # ------------------------------------------------------------------ power and readiness

    def _state(self, vm: VmSpec, step: str) -> dict[str, Any]:
        pool, vm_id = self.locate(vm)
        return pool.run("hyperv-state", vm=vm.name, step=step, VMId=vm_id)

    def power_state(self, vm: VmSpec) -> str:
        state = str(self._state(vm, "power_state").get("State"))
        return POWER_STATES.get(state, state)

    def power_on(self, vm: VmSpec) -> None:
        """``Start-VM`` unless running: boots a VM a production checkpoint left off, resumes one left saved."""
        pool, vm_id = self.locate(vm)
        doc = pool.run("hyperv-start", vm=vm.name, step="power_on", VMId=vm_id)
        if doc.get("State") != "Running":
            raise HypervisorError(f"Start-VM left the VM {doc.get('State')} (host {pool.name})", vm=vm.name,
                                  step="power_on")

    def wait_ready(self, vm: VmSpec, timeout: float) -> GuestEndpoint:
        """Poll until the Heartbeat integration service reports OK and (unless vms[].address is set) the guest
        reports an IPv4 address through KVP; each bounded by its own setting and by ``timeout``."""
        began = time.monotonic()
        beat_deadline = began + min(timeout, self.settings.heartbeat_timeout)
        ip_deadline = began + min(timeout, self.settings.ip_timeout)
        need_address = vm.address is None and self.guest_addresses
        last: dict[str, Any] = {}
        while True:
            last = self._state(vm, "wait_ready")
            beating = bool(last.get("HeartbeatEnabled")) and last.get("Heartbeat") in HEARTBEAT_OK
            address = guest_address(last.get("IPAddresses") or [])
            if beating and (address or not need_address):
                return GuestEndpoint(address=vm.address or address or "", hostname=None if need_address else vm.name)
            now = time.monotonic()
            if not beating and now >= beat_deadline:
                raise LabTimeout(f"the Heartbeat integration service did not report OK within "
                                 f"{beat_deadline - began:g}s (state {last.get('State')}, heartbeat "
                                 f"'{last.get('Heartbeat')}', enabled {last.get('HeartbeatEnabled')})",
                                 vm=vm.name, step="wait_ready")
            if beating and now >= ip_deadline:
                raise LabTimeout(f"the guest reported no IPv4 address through KVP within {ip_deadline - began:g}s "
                                 f"(addresses {last.get('IPAddresses') or 'none'}; is the Data Exchange "
                                 "integration service on?)", vm=vm.name, step="wait_ready")
            if self.cancel_event.wait(self.settings.poll_interval):
                raise HypervisorError("the run is stopping", vm=vm.name, step="wait_ready")

    def reboot(self, vm: VmSpec) -> None:
        """A guest OS restart: ``Stop-VM -Force`` (a shutdown through the guest, never a hard reset behind the
        caller's back; ``Restart-VM`` is one) and ``Start-VM``. The shutdown waits for the guest to be off, so the
        readiness wait that follows cannot see the guest from before the restart."""
        pool, vm_id = self.locate(vm)
        doc = pool.run("hyperv-restart", vm=vm.name, step="reboot", timeout=self.settings.reboot_down_timeout + 360,
                       VMId=vm_id)
        if doc.get("State") != "Running":
            raise HypervisorError(f"the VM is {doc.get('State')} after its restart (host {pool.name})",
                                  vm=vm.name, step="reboot")

    # ------------------------------------------------------------------ run hygiene

    def mark_in_use(self, vm: VmSpec, run_id: str | None) -> None:
        """One line of the VM's Notes names the run using it (the rest of the Notes is the operator's)."""
        pool, vm_id = self.locate(vm)
        value = RunTag.for_this_process(run_id).to_json() if run_id else ""
        pool.run("hyperv-tag", vm=vm.name, step="mark-in-use", VMId=vm_id, Prefix=self.settings.run_tag_prefix,
                 Value=value)

    def raw_run_tag(self, vm: VmSpec) -> str | None:
        """The run tag's text: the Notes line after ``run_tag_prefix`` (None when no line has the prefix)."""
        notes = str(self._state(vm, "run-tag").get("Notes") or "")
        prefix = self.settings.run_tag_prefix
        return next((line[len(prefix):] for line in notes.splitlines() if line.startswith(prefix)), None)

    def run_tag(self, vm: VmSpec) -> RunTag | None:
        return RunTag.parse(self.raw_run_tag(vm))

    @property
    def keep_failure_snapshots(self) -> bool:
        return self.settings.keep_failure_snapshot

    def keep_failure_snapshot(self, vm: VmSpec, run_id: str) -> str | None:
        if not self.settings.keep_failure_snapshot:
            return None
        pool, vm_id = self.locate(vm)
        name = f"{FAILURE_CHECKPOINT_PREFIX}{run_id}"
        pool.run("hyperv-checkpoint-create", vm=vm.name, step="failure-snapshot", VMId=vm_id, Name=name)
        return name

    # ------------------------------------------------------------------ doctor

    def doctor_checks(self, vm: VmSpec, snap: SnapshotRef | None) -> list[tuple[str, str, str, str]]:
        """(name, status, detail, advice) for ``patchgate doctor``: the host's rights and the checkpoint's type."""
        out: list[tuple[str, str, str, str]] = []
        host = self.settings.vm_hosts.get(vm.name) or (snap.extra.get("host") if snap else None)
        facts = self.host_facts.get(host or "", {})
        if facts and not facts.get("hyperv_admin"):
            out.append(("Hyper-V rights", "warn", f"the account is in neither Hyper-V Administrators nor "
                        f"Administrators on {host}", "add it to the host's Hyper-V Administrators group "
                        "(docs/hyperv.md)"))
        elif facts:
            out.append(("Hyper-V rights", "ok", f"Hyper-V Administrators (or Administrators) on {host}", ""))
        if snap is not None:
            kind = snap.extra.get("checkpoint_type", "")
            comes_back = ("off: patchgate starts it" if kind.lower().startswith("production")
                          else "as it was taken (saved when taken running): patchgate starts or resumes it")
            out.append(("checkpoint type", "ok", f"'{snap.name}' is a {kind or 'unknown'} checkpoint "
                        f"(VMId {snap.extra.get('vm_id')}); a restore brings the VM back {comes_back}", ""))
        return out


def guest_address(addresses: list[Any]) -> str | None:
    """The first IPv4 address the guest reports that is neither link-local nor loopback-only noise."""
    for text in addresses:
        try:
            address = ipaddress.ip_address(str(text))
        except ValueError:
            continue
        if address.version == 4 and not address.is_link_local and not address.is_unspecified:
            return str(address)
    return None


def host_remoting(lab: Any) -> PsrpSettings:
    """The psrp settings the hosts are reached with: the lab's own psrp remoting, or PowerShell Direct's
    ``settings.host``; any other remoting is bad input (exit 4)."""
    if lab.remoting.kind == "psdirect":
        from patchgate.hypervisors.hyperv.psdirect_settings import psdirect_settings

        return psdirect_settings(lab).host
    if lab.remoting.kind != "psrp":
        raise ConfigError(f"hypervisor.kind hyperv drives its hosts over psrp; remoting.kind is "
                          f"'{lab.remoting.kind}' (psrp, or psdirect for PowerShell Direct)",
                          file=str(lab.source) if lab.source else None, field="remoting.kind")
    return lab.remoting.settings
