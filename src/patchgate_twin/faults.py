"""Lab trouble the twin can inject, named in a lab file (per VM) or by a behaviour.

Each fault names one way a real lab misbehaves; docs/twin.md and docs/reliability.md list the observed outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from patchgate.errors import ConfigError

FAULTS: dict[str, str] = {
    "never-ready": "the guest never reports ready after power-on (no heartbeat, no remoting)",
    "no-ip": "the guest boots but never reports an IP address",
    "unreachable": "the guest reports ready but its remoting endpoint refuses connections",
    "revert-fails": "the hypervisor fails the snapshot revert task",
    "install-fails": "the package install fails on the VM (DISM error)",
    "install-hangs": "the package install never finishes (until the lab's install timeout)",
    "reboot-never-returns": "after the install's restart the guest never comes back",
    "wsman-reset": "the WSMan connection is reset in the middle of a capture pipeline",
    "wsman-fault": "the WSMan endpoint answers captures with a SOAP fault",
    "auth-failure": "the host rejects the lab's remoting credentials",
    "malformed-probe": "a probe prints text that is not its JSON document",
    "vault-unreachable": "Vault stops answering in the middle of the run",
    "vault-sealed": "Vault is sealed in the middle of the run",
    "lease-held": "another live run holds this VM's lease",
    "worker-dies": "the pytest-xdist worker running this VM's checks dies",
    "pending-reboot": "the snapshot was taken with a reboot pending (CBS RebootPending)",
    "disk-full": "the system drive is full (argument: free MiB, default 100)",
    "constrained-language": "the remoting endpoint runs ConstrainedLanguage (AppLocker/WDAC enforced)",
    "clock-skew": "the guest's clock is off (argument: seconds, default 900)",
    "download-drops": "the VM's package download is cut half-way (argument: how often, default 1); it resumes",
    "download-corrupts": "one byte of the VM's package download arrives wrong; the hash check refuses it",
    "download-stalls": "the VM's package download stops after its first chunk and never goes on",
}

# Faults of the twin's Hyper-V host (labs with ``hypervisor.kind: hyperv`` and ``guests: twin``, docs/hyperv.md).
HYPERV_FAULTS: dict[str, str] = {
    "checkpoint-missing": "the host lists no checkpoint of the lab's name for the VM (the first revert step; "
                          "argument N: the first N lookups, 'always': every one)",
    "restore-fails": "the host's Restore-VMSnapshot job fails (the first revert step; argument N or 'always')",
    "heartbeat-never-ok": "the Heartbeat integration service never reports OK after a start",
    "no-kvp-ip": "the guest never reports an IP address through KVP data exchange",
    "host-unreachable": "the VM's Hyper-V host refuses every WinRM connection",
    "psdirect-refused": "the host cannot open a PowerShell Direct session to the guest (remoting.kind psdirect)",
}
ALL_FAULTS = {**FAULTS, **HYPERV_FAULTS}


@dataclass(frozen=True)
class Fault:
    kind: str
    argument: str | None = None

    @classmethod
    def parse(cls, text: str, *, where: str | None = None) -> "Fault":
        kind, _, argument = text.partition(":")
        kind = kind.strip()
        if kind not in ALL_FAULTS:
            known = ", ".join(sorted(ALL_FAULTS))
            raise ConfigError(f"unknown twin fault '{kind}' (known: {known})", file=where, field="faults")
        return cls(kind, argument.strip() or None)


def parse_faults(texts: list[str], *, where: str | None = None) -> dict[str, Fault]:
    return {f.kind: f for f in (Fault.parse(t, where=where) for t in texts)}
