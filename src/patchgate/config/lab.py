"""The lab file: where the VMs live, how to reach them, where secrets come from, and the lab's policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from patchgate.config.located import FieldProblem
from patchgate.config.policy import Policy
from patchgate.config.staging import Staging
from patchgate.config.strict import Strict

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


# ---------------------------------------------------------------- hypervisors

class TwinLatency(Strict):
    """Seconds the twin waits per operation so rehearsals look like a real lab."""

    revert: float = Field(0.0, ge=0, le=600)
    boot: float = Field(0.0, ge=0, le=600)
    install: float = Field(0.0, ge=0, le=3600)
    reboot: float = Field(0.0, ge=0, le=600)
    wsman_round_trip: float = Field(0.0, ge=0, le=10)


class TwinHypervisorSettings(Strict):
    latency: TwinLatency = TwinLatency()
    noise: Literal["realistic", "quiet"] = Field(
        "quiet", description="realistic: the hosts change on their own as real VMs do (docs/twin.md, Noise)")
    seed: int | None = Field(None, ge=0, description="the noise's seed; `patchgate validate --seed N` sets it "
                             "(default: a fresh one per run, recorded in run-manifest.json)")
    clock_skew: float | None = Field(None, ge=-3600, le=3600, description="seconds every guest's clock is ahead "
                                     "of the controller's (negative: behind); default: none when quiet, a seeded "
                                     "skew of up to 90 s per VM when realistic")
    own_process: bool = Field(True, description="serve the twin's hosts and their WinRM listeners from a process "
                              "of their own, as a real lab's machines are (psrp remoting); false keeps them inside "
                              "the harness's process, where a debugger or profiler sees both sides")
    at_rest: Literal["running", "off"] = Field(
        "running", description="how the twin's VMs rest between runs: running at their snapshot (doctor reads them "
        "as they are) or powered off (doctor warns per guest check unless --boot); docs/twin.md, At rest")


class VsphereSettings(Strict):
    url: str = Field(..., description="https://vcenter.example.com/sdk")
    datacenter: str | None = None
    cert_validation: bool = True
    ca_bundle: Path | None = None
    thumbprint: str | None = Field(None, description="pinned SHA-256 fingerprint of the server certificate")
    credentials_path: str | None = Field(None, description="secrets path holding username/password")
    tools_timeout: float = Field(300, gt=0)
    heartbeat_timeout: float = Field(300, gt=0)
    ip_timeout: float = Field(300, gt=0)
    task_timeout: float = Field(1800, gt=0)
    keep_failure_snapshot: bool = False
    run_tag_field: str = "patchgate.run"
    reboot_down_timeout: float = Field(120, gt=0, description="after a guest reboot request: wait this long "
                                       "for VMware Tools to stop before waiting for readiness again")
    reap_max_age: float = Field(43200, gt=0, description="seconds after which a run tag written on another "
                                "host counts as abandoned (the reaper cannot check that host's processes)")
    guests: str = Field("real", description="who plays the VMs' guest OS: `real`, or the lab kind that simulates "
                        "them on a simulator vCenter (`twin`: the rehearsal lab, docs/twin.md)")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://vcenter.example.com/sdk")
        return value

    @field_validator("thumbprint")
    @classmethod
    def _thumb(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hexed = value.replace(":", "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", hexed):
            raise ValueError("must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
        return hexed


class HypervSettings(Strict):
    host: str
    cert_validation: bool = True
    credentials_path: str | None = None


class TwinHypervisor(Strict):
    kind: Literal["twin"]
    settings: TwinHypervisorSettings = TwinHypervisorSettings()


class VsphereHypervisor(Strict):
    kind: Literal["vsphere"]
    settings: VsphereSettings


class HypervHypervisor(Strict):
    kind: Literal["hyperv"]
    settings: HypervSettings


Hypervisor = Annotated[TwinHypervisor | VsphereHypervisor | HypervHypervisor, Field(discriminator="kind")]


# ---------------------------------------------------------------- remoting

AuthKind = Literal["basic", "ntlm", "negotiate", "kerberos", "credssp", "certificate"]


class PsrpSettings(Strict):
    port: int | None = Field(None, ge=1, le=65535, description="default 5986 with ssl, 5985 without")
    ssl: bool = True
    auth: AuthKind = "negotiate"
    cert_validation: bool = True
    ca_bundle: Path | None = None
    encryption: Literal["auto", "always", "never"] = "auto"
    path: str = "wsman"
    connect_timeout: float = Field(30, gt=0)
    read_timeout: float = Field(60, gt=0)
    operation_timeout: float = Field(20, gt=0)
    staging_dir: str = r"C:\ProgramData\patchgate\staging"

    @model_validator(mode="after")
    def _read_after_operation(self) -> "PsrpSettings":
        if self.read_timeout <= self.operation_timeout:
            raise ValueError("read_timeout must be greater than operation_timeout (WSMan long-polls for "
                             "operation_timeout seconds before answering)")
        return self


class SshSettings(Strict):
    port: int = Field(22, ge=1, le=65535)
    connect_timeout: float = Field(30, gt=0)
    command_timeout: float = Field(1800, gt=0)
    known_hosts: Path | None = None
    host_key_checking: bool = True
    identity_file: Path | None = Field(None, description="private key for public-key auth; else the password")
    staging_dir: str = r"C:\ProgramData\patchgate\staging"


class PsrpRemoting(Strict):
    kind: Literal["psrp"]
    settings: PsrpSettings = PsrpSettings()


class SshRemoting(Strict):
    kind: Literal["ssh"]
    settings: SshSettings = SshSettings()


class InProcessRemoting(Strict):
    """Twin only, for unit tests: calls the twin's shell directly, no network."""

    kind: Literal["inprocess"]
    settings: dict[str, str] = {}


Remoting = Annotated[PsrpRemoting | SshRemoting | InProcessRemoting, Field(discriminator="kind")]


# ---------------------------------------------------------------- secrets

class EnvSecretsSettings(Strict):
    """Credentials from environment variables; the variable names are configurable, values never are."""

    username_var: str = "PATCHGATE_USERNAME"
    password_var: str = "PATCHGATE_PASSWORD"
    hypervisor_username_var: str = "PATCHGATE_HYPERVISOR_USERNAME"
    hypervisor_password_var: str = "PATCHGATE_HYPERVISOR_PASSWORD"


class VaultAuth(Strict):
    method: Literal["token", "approle", "jwt"] = "token"
    role: str | None = None
    mount: str | None = None
    role_id_env: str = "VAULT_ROLE_ID"
    secret_id_env: str = "VAULT_SECRET_ID"
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    jwt_env: str = "VAULT_JWT"
    jwt_file: Path | None = Field(None, description="file with the CI job's OIDC token (instead of jwt_env)")
    token_env: str = "VAULT_TOKEN"


class VaultSecretsSettings(Strict):
    address: str | None = Field(None, description="default: VAULT_ADDR")
    namespace: str | None = None
    ca_bundle: Path | None = None
    cert_validation: bool = True
    auth: VaultAuth = VaultAuth()
    kv_mount: str = "secret"
    hypervisor_path: str | None = None
    remoting_path: str | None = Field(None, description="default remoting credentials for every VM")
    role_paths: dict[str, str] = {}
    vm_paths: dict[str, str] = {}
    leases_path: str | None = Field(None, description="KV v2 prefix for VM leases; enables Vault leases")
    lease_ttl: float = Field(900, gt=0)
    transit_mount: str = "transit"
    signing_key: str | None = Field(None, description="transit key (ed25519) that signs gate.json")
    timeout: float = Field(30, gt=0, description="seconds per Vault HTTP request")


class TwinSecretsSettings(Strict):
    """The twin lab's own credentials, generated per run; nothing to configure."""


class EnvSecrets(Strict):
    kind: Literal["env"]
    settings: EnvSecretsSettings = EnvSecretsSettings()


class VaultSecrets(Strict):
    kind: Literal["vault"]
    settings: VaultSecretsSettings = VaultSecretsSettings()


class TwinSecrets(Strict):
    kind: Literal["twin"]
    settings: TwinSecretsSettings = TwinSecretsSettings()


Secrets = Annotated[EnvSecrets | VaultSecrets | TwinSecrets, Field(discriminator="kind")]


# ---------------------------------------------------------------- VMs and run limits

Role = Literal["hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host"]


class ControlPair(Strict):
    """The spare VM a VM's control runs on (``control: {vm: paired}``): the same role, snapshot name and image."""

    name: str = Field(..., pattern=NAME_RE)
    address: str | None = Field(None, description="override the address the hypervisor reports")
    inventory_path: str | None = Field(None, description="vSphere inventory path when names are not unique")
    faults: list[str] = Field(default_factory=list, description="twin only: lab trouble to inject")


class VmSpec(Strict):
    name: str = Field(..., pattern=NAME_RE)
    role: Role
    snapshot: str = Field(..., min_length=1)
    ring: str = "ring0"
    image: str | None = Field(None, description="twin only: the named starting state")
    address: str | None = Field(None, description="override the address the hypervisor reports")
    inventory_path: str | None = Field(None, description="vSphere inventory path when names are not unique")
    faults: list[str] = Field(default_factory=list, description="twin only: lab trouble to inject")
    control_pair: ControlPair | None = Field(None, description="the spare VM with the same image this VM's control "
                                             "runs on (a name or a mapping); needs `control: {vm: paired}`")

    @field_validator("control_pair", mode="before")
    @classmethod
    def _pair_name(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value

    def paired(self) -> "VmSpec | None":
        """The control's VM: this VM's role, snapshot and image under the pair's name (None without a pair)."""
        pair = self.control_pair
        if pair is None:
            return None
        return VmSpec(name=pair.name, role=self.role, snapshot=self.snapshot, ring=self.ring, image=self.image,
                      address=pair.address, inventory_path=pair.inventory_path, faults=list(pair.faults))


class Control(Strict):
    """A control run per VM without the candidate (docs/invariants.md, "Control runs")."""

    mode: Literal["none", "reboot"] = Field("reboot", description="reboot: restore, the same restart the "
                                            "candidate demanded, settle, captures")
    vm: Literal["same", "paired"] = Field("same", description="same: on the VM itself after the candidate's run; "
                                          "paired: on each VM's `control_pair` while the candidate runs")


class Limits(Strict):
    total: int = Field(32, ge=1, le=512)
    revert: int = Field(8, ge=1, le=512)
    install: int = Field(8, ge=1, le=512)
    capture: int = Field(16, ge=1, le=512)


class Timeouts(Strict):
    ready: float = Field(600, gt=0)
    install: float = Field(3600, gt=0)
    stage: float = Field(1800, gt=0, description="getting the candidate's packages onto one VM (downloaded or "
                         "copied, hashed), apart from the install's own timeout")
    reboot: float = Field(900, gt=0)
    capture: float = Field(300, gt=0)
    revert: float = Field(600, gt=0)
    settle: float = Field(300, ge=0, description="longest wait after the install (and its restart) for the guest "
                          "to settle before the post capture: nothing pending, delayed-start services started")
    settle_min: float = Field(60, ge=0, description="shortest wait after the install (and its restart) before the "
                              "post capture, in the guest's seconds: what a service that crashes soon after the "
                              "install writes to the event log is there by then (capped by settle)")


class Retries(Strict):
    count: int = Field(2, ge=0, le=10)
    backoff: float = Field(2.0, ge=0, le=300)


class Lab(Strict):
    name: str = Field(..., pattern=NAME_RE)
    description: str = ""
    hypervisor: Hypervisor
    remoting: Remoting
    secrets: Secrets
    vms: list[VmSpec] = Field(..., min_length=1)
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    retries: Retries = Retries()
    staging: Staging = Staging()
    policy: Policy = Policy()
    calendar: Path | None = Field(None, description="the lab's own hotpatch calendar file (relative to the lab file); "
                                                     "default: the built-in calendar (docs/calendar.md)")
    control: Control = Field(
        "none", description="reboot: after the candidate's run each VM is restored and goes through the same "
        "lifecycle without the candidate (the same restart, settle, captures); a check that also fails there is "
        "noise seen on the control, not a block (`patchgate validate --control` sets it); `{mode: reboot, vm: "
        "paired}` runs it on each VM's `control_pair` at the same time as the candidate's run")

    @field_validator("control", mode="before")
    @classmethod
    def _control_word(cls, value: object) -> object:
        """The word forms: ``none`` and ``reboot`` (on the same VM)."""
        return {"mode": value} if isinstance(value, str) else value
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> "Lab":
        seen: set[str] = set()
        for vm in self.vms:
            if vm.name in seen:
                raise ValueError(f"VM name '{vm.name}' appears twice")
            seen.add(vm.name)
        twin = self.simulated
        for vm in self.vms:
            if twin and not vm.image:
                raise ValueError(f"VM '{vm.name}' needs 'image' (the twin starting state) on a twin lab")
            if vm.faults and not twin:
                raise ValueError(f"VM '{vm.name}' lists faults, which only the twin can inject")
        if self.remoting.kind == "inprocess" and self.hypervisor.kind != "twin":
            raise ValueError("remoting kind 'inprocess' works only with the twin hypervisor")
        self._check_pairs(seen)
        return self

    def _check_pairs(self, names: set[str]) -> None:
        paired = self.control_plan.vm == "paired"
        pairs: set[str] = set()
        for index, vm in enumerate(self.vms):
            where = ("vms", index, "control_pair")
            if vm.control_pair is None:
                if paired:
                    raise FieldProblem(("vms", index), f"VM '{vm.name}' needs a control_pair (a spare VM with the "
                                       "same image and snapshot) because control.vm is 'paired'")
                continue
            if not paired:
                raise FieldProblem(where, f"a control pair is used only with `control: {{mode: reboot, vm: "
                                   f"paired}}` (control is {self.control_plan.mode}, vm {self.control_plan.vm})")
            name = vm.control_pair.name
            if name in names:
                raise FieldProblem(where, f"'{name}' is a VM of the lab; a control pair is a spare VM that never "
                                   "gets the candidate")
            if name in pairs:
                raise FieldProblem(where, f"'{name}' is already another VM's control pair")
            pairs.add(name)
            if vm.control_pair.faults and not (self.hypervisor.kind == "twin" or (
                    self.hypervisor.kind == "vsphere" and self.hypervisor.settings.twin_guest)):
                raise FieldProblem((*where, "faults"), "only the twin can inject faults")

    @property
    def control_plan(self) -> Control:
        """``control`` as a Control, also after a ``model_copy`` that set one of its word forms."""
        return self.control if isinstance(self.control, Control) else Control(mode=self.control)

    @property
    def control_vms(self) -> list[VmSpec]:
        """The spare VMs the controls run on (leased, reverted and restored like the lab's VMs)."""
        return [pair for pair in (vm.paired() for vm in self.vms) if pair is not None]

    @property
    def simulated(self) -> bool:
        """The lab's guests are played by a simulating lab kind (the twin), not by real machines."""
        return self.hypervisor.kind == "twin" or getattr(self.hypervisor.settings, "guests", "real") != "real"

    @property
    def signs_verdicts(self) -> bool:
        """Verdicts are signed with a Vault transit key (secrets.settings.signing_key)."""
        return self.secrets.kind == "vault" and bool(getattr(self.secrets.settings, "signing_key", None))

    @property
    def calendar_path(self) -> Path | None:
        """The lab's calendar file, resolved against the lab file's folder."""
        if self.calendar is None:
            return None
        base = self.source.parent if self.source else Path.cwd()
        return (base / self.calendar).resolve()

    def vm(self, name: str) -> VmSpec:
        """A VM of the lab or a control pair, by name."""
        for vm in [*self.vms, *self.control_vms]:
            if vm.name == name:
                return vm
        raise KeyError(name)
