"""The lab file's ``hypervisor.settings`` for ``kind: hyperv``: which hosts, how long to wait, how runs are tagged.

The host is reached over the lab's own psrp remoting settings (port, TLS, auth, timeouts), with the hypervisor
credentials from the lab's secrets; a host entry may override the port and TLS only (docs/hyperv.md).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from patchgate.config.strict import Strict

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class HypervHost(Strict):
    """One Hyper-V host (or failover-cluster node) the lab's VMs live on."""

    name: str = Field(..., min_length=1, description="the host's name (its WinRM SPN with negotiate/kerberos)")
    address: str | None = Field(None, description="where to dial it (default: the name)")
    port: int | None = Field(None, ge=1, le=65535, description="WinRM port (default: remoting.settings.port)")
    ssl: bool | None = Field(None, description="HTTPS to the host (default: remoting.settings.ssl)")


class HypervSettings(Strict):
    host: str | None = Field(None, description="shorthand for one host: `hosts: [{name: HOST}]`")
    hosts: list[HypervHost] = Field(default_factory=list, description="the Hyper-V hosts; a VM is looked up "
                                    "on every host and must be on exactly one (or on the one vm_hosts names)")
    vm_hosts: dict[str, str] = Field(default_factory=dict, description="VM name -> host name, when known")
    vm_ids: dict[str, str] = Field(default_factory=dict, description="VM name -> its VMId (GUID): the VM is "
                                   "found by id, and a VM of that name with another id is an error")
    cert_validation: bool = Field(True, description="validate the host's TLS certificate (with ssl)")
    credentials_path: str | None = Field(None, description="secrets path holding the host's username/password")
    checkpoint_type: str = Field("any", pattern=r"^(any|standard|production)$", description="the checkpoint "
                                 "type the lab's checkpoints must have (any: either)")
    heartbeat_timeout: float = Field(300, gt=0, description="seconds the Heartbeat integration service may take "
                                     "to report OK after a start (bounded by timeouts.ready)")
    ip_timeout: float = Field(300, gt=0, description="seconds the guest may take to report an IP through KVP")
    job_timeout: float = Field(1800, gt=0, description="seconds a checkpoint restore job may take on the host")
    poll_interval: float = Field(2.0, gt=0, le=60, description="seconds between readiness polls of the host")
    reboot_down_timeout: float = Field(420, gt=0, description="seconds a guest restart's shutdown (Stop-VM -Force; "
                                       "Hyper-V gives the guest five minutes) may take before patchgate gives up")
    keep_failure_snapshot: bool = Field(False, description="take a checkpoint `patchgate-failure-<run>` of a VM "
                                        "whose run failed, before its restore")
    reap_max_age: float = Field(43200, gt=0, description="seconds after which a run tag written on another "
                                "machine counts as abandoned (the reaper cannot check that machine's processes)")
    run_tag_prefix: str = Field("patchgate.run=", min_length=1, description="the line of the VM's Notes that "
                                "names the run using it (the rest of the Notes is left alone)")
    guests: str = Field("real", description="who plays the VMs' guest OS: `real`, or the name of the lab kind "
                        "that simulates them and serves the Hyper-V hosts too (docs/hyperv.md)")

    @field_validator("vm_ids")
    @classmethod
    def _guids(cls, value: dict[str, str]) -> dict[str, str]:
        for name, guid in value.items():
            if not GUID_RE.match(guid):
                raise ValueError(f"vm_ids.{name}: '{guid}' is not a VMId (a GUID such as "
                                 "1b4e28ba-2fa1-11d2-883f-0016d3cca427)")
        return {name: guid.lower() for name, guid in value.items()}

    @model_validator(mode="after")
    def _some_host(self) -> "HypervSettings":
        if self.host is None and not self.hosts:
            raise ValueError("name the Hyper-V host: `host: NAME` or `hosts: [{name: NAME}, ...]`")
        names = [h.name for h in self.all_hosts]
        if len(set(names)) != len(names):
            raise ValueError("a Hyper-V host is listed twice")
        for vm, host in self.vm_hosts.items():
            if host not in names:
                raise ValueError(f"vm_hosts.{vm}: '{host}' is not one of the hosts ({', '.join(names)})")
        return self

    @property
    def all_hosts(self) -> list[HypervHost]:
        extra = [HypervHost(name=self.host)] if self.host and all(h.name != self.host for h in self.hosts) else []
        return [*extra, *self.hosts]
