"""The lab file: where the VMs live, how to reach them, where secrets come from, and the lab's policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from patchgate.config.install import InstallSettings, WsusSettings
from patchgate.config.located import FieldProblem
from patchgate.config.policy import Policy
from patchgate.config.staging import Staging
from patchgate.config.strict import Strict
from patchgate.errors import ConfigError
from patchgate.labkinds import LabKind, guest_kind_name, kinds_of, known_kinds, lab_kind

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


# ---------------------------------------------------------------- hypervisors

def kind_of(name: str) -> LabKind:
    """The lab kind registered as ``name``, for a validator: an unknown one is a ValueError on the field."""
    try:
        return lab_kind(name)
    except ConfigError as exc:
        raise ValueError(exc.detail) from None


class NoSettings(Strict):
    """The settings of a kind that declares none: any key is a typo."""


def kind_settings(model: type[BaseModel] | None, value: object) -> BaseModel:
    """``value`` validated as a kind's settings model; its problems keep their place in the file (pydantic
    prefixes the location of a ValidationError raised inside a field validator)."""
    model = model or NoSettings
    if value is None and any(field.is_required() for field in model.model_fields.values()):
        raise PydanticCustomError("missing", "Field required")
    return model.model_validate({} if value is None else value)


class HypervisorSection(Strict):
    """``hypervisor:``: the lab kind that drives the VMs, and its settings in the model that kind declares
    (``settings_model``, patchgate.labkinds): the engine knows no kind's settings."""

    kind: str
    settings: Any = Field(None, validate_default=True)

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        kind_of(value)
        return value

    @field_validator("settings", mode="before")
    @classmethod
    def _of_the_kind(cls, value: object, info: ValidationInfo) -> object:
        if "kind" not in info.data:
            return value  # the kind is wrong: that is the problem to report
        return kind_settings(kind_of(info.data["kind"]).settings_model, value)


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


class KindRemoting(Strict):
    """A remoting a lab kind serves itself (its ``remoting_kinds``: a simulator's shortcut for unit tests, say);
    the lab checks that one of its kinds serves it."""

    kind: str
    settings: dict[str, Any] = {}


def _own_or_kind(engine_kinds: tuple[str, ...]) -> Callable[[object], str]:
    """The union tag of a section whose ``kind`` is one of the engine's, or else a lab kind's."""

    def tag(value: object) -> str:
        kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
        return kind if kind in engine_kinds else "lab-kind"  # type: ignore[return-value]

    return tag


ENGINE_REMOTING = ("psrp", "ssh")
Remoting = Annotated[Annotated[PsrpRemoting, Tag("psrp")] | Annotated[SshRemoting, Tag("ssh")]
                     | Annotated[KindRemoting, Tag("lab-kind")], Discriminator(_own_or_kind(ENGINE_REMOTING))]


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


class EnvSecrets(Strict):
    kind: Literal["env"]
    settings: EnvSecretsSettings = EnvSecretsSettings()


class VaultSecrets(Strict):
    kind: Literal["vault"]
    settings: VaultSecretsSettings = VaultSecretsSettings()


class KindSecrets(Strict):
    """``secrets.kind`` naming a lab kind that keeps its own accounts (made per run, say); its ``settings`` are in
    the model that kind declares (``secrets_model``)."""

    kind: str
    settings: Any = Field(None, validate_default=True)

    @field_validator("kind")
    @classmethod
    def _keeps_accounts(cls, value: str) -> str:
        try:
            kind = lab_kind(value)
        except ConfigError:
            raise ValueError(f"unknown secrets kind '{value}': env, vault, or a lab kind that keeps its own "
                             f"accounts (installed lab kinds: {', '.join(known_kinds())})") from None
        if kind.secrets_model is None:
            raise ValueError(f"lab kind '{value}' keeps no accounts of its own: use env or vault")
        return value

    @field_validator("settings", mode="before")
    @classmethod
    def _of_the_kind(cls, value: object, info: ValidationInfo) -> object:
        if "kind" not in info.data:
            return value
        return kind_settings(lab_kind(info.data["kind"]).secrets_model, value)


ENGINE_SECRETS = ("env", "vault")
Secrets = Annotated[Annotated[EnvSecrets, Tag("env")] | Annotated[VaultSecrets, Tag("vault")]
                    | Annotated[KindSecrets, Tag("lab-kind")], Discriminator(_own_or_kind(ENGINE_SECRETS))]


# ---------------------------------------------------------------- VMs and run limits

Role = Literal["hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host"]


class ControlPair(Strict):
    """The spare VM a VM's control runs on (``control: {vm: paired}``): the same role, snapshot name and image."""

    name: str = Field(..., pattern=NAME_RE)
    address: str | None = Field(None, description="override the address the hypervisor reports")
    inventory_path: str | None = Field(None, description="vSphere inventory path when names are not unique")
    faults: list[str] = Field(default_factory=list, description="a simulated lab only: lab trouble to inject")


class VmSpec(Strict):
    name: str = Field(..., pattern=NAME_RE)
    role: Role
    snapshot: str = Field(..., min_length=1)
    ring: str = "ring0"
    image: str | None = Field(None, description="a simulated lab only: the named starting state")
    address: str | None = Field(None, description="override the address the hypervisor reports")
    inventory_path: str | None = Field(None, description="vSphere inventory path when names are not unique")
    faults: list[str] = Field(default_factory=list, description="a simulated lab only: lab trouble to inject")
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
    hypervisor: HypervisorSection
    remoting: Remoting
    secrets: Secrets
    vms: list[VmSpec] = Field(..., min_length=1)
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    retries: Retries = Retries()
    staging: Staging = Staging()
    policy: Policy = Policy()
    install: InstallSettings = InstallSettings()
    wsus: WsusSettings | None = Field(None, description="the lab's WSUS server and group (`install: {via: wsus}`)")
    rings: dict[str, Any] | None = Field(None, description="production rings for `patchgate promote` "
                                         "(patchgate.config.rings, validated by load_lab; docs/rings.md)")
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
        simulated = self._simulated_by_its_kinds()
        for index, vm in enumerate(self.vms):
            if simulated and not vm.image:
                raise FieldProblem(("vms", index, "image"), f"VM '{vm.name}' needs 'image' (the starting state its "
                                   "simulated guest boots from) on a lab whose guests are simulated")
            if vm.faults and not simulated:
                raise FieldProblem(("vms", index, "faults"), f"VM '{vm.name}' lists faults, which only a lab kind "
                                   "that simulates the guests can inject")
        self._check_remoting_kind()
        self._check_pairs(seen)
        self._check_wsus()
        return self

    def _check_wsus(self) -> None:
        if self.install.via != "wsus":
            return
        if self.wsus is None:
            raise FieldProblem(("install", "via"), "`install: {via: wsus}` needs a `wsus:` section naming the "
                               "server and the computer target group")
        external = self.wsus.external
        server = None if external else next((vm for vm in self.vms if vm.name == self.wsus.server), None)
        if external is not None:
            self._check_external_wsus(external)
        elif server is None:
            raise FieldProblem(("wsus", "server"), f"'{self.wsus.server}' is not a VM of the lab; name the lab VM "
                               "with role wsus-server that approves the candidate, or an existing WSUS as "
                               "{address: ...} (docs/wsus.md)")
        elif server.role != "wsus-server":
            raise FieldProblem(("wsus", "server"), f"VM '{server.name}' has role {server.role}, not wsus-server")
        if self.limits.total < len(self.vms):
            raise FieldProblem(("limits", "total"), f"`install: {{via: wsus}}` runs every VM at once (the VMs wait "
                               f"for the WSUS server's approval together): limits.total must be at least "
                               f"{len(self.vms)}, the lab's VMs")

    def _check_external_wsus(self, external: Any) -> None:
        """A WSUS outside the lab is reached as promote reaches a production server: the engine's remoting and
        env/vault secrets (a lab kind's remoting or accounts serve only the kind's own VMs)."""
        if external.label in {vm.name for vm in self.vms}:
            raise FieldProblem(("wsus", "server", "name"), f"'{external.label}' is a VM of the lab; name that VM "
                               "(server: <name>) or give the external server another name")
        if self.remoting.kind not in ENGINE_REMOTING:
            raise FieldProblem(("wsus", "server"), f"a WSUS outside the lab is reached over the lab's remoting, "
                               f"which must be psrp or ssh (the lab's is {self.remoting.kind})")
        if self.secrets.kind not in ("env", "vault"):
            raise FieldProblem(("wsus", "server"), f"a WSUS outside the lab takes its account from the lab's "
                               f"secrets, which must be env or vault (the lab's are {self.secrets.kind})")
        if self.remoting.kind == "ssh" and external.ssl is not None:
            raise FieldProblem(("wsus", "server", "ssl"), "ssl applies to psrp remoting only (the lab's is ssh)")

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
            if vm.control_pair.faults and not self.simulated:
                raise FieldProblem((*where, "faults"), "only a lab kind that simulates the guests can inject faults")

    def _simulated_by_its_kinds(self) -> bool:
        """Whether a kind of the lab simulates its guests; a guests kind that is not installed is named here."""
        guests = guest_kind_name(self)
        if guests is not None:
            try:
                kind_of(guests)
            except ValueError as exc:
                raise FieldProblem(("hypervisor", "settings", "guests"), str(exc)) from None
        return self.simulated

    def _check_remoting_kind(self) -> None:
        """A remoting kind the engine does not build is one the hypervisor's kind serves itself."""
        served = kind_of(self.hypervisor.kind).remoting_kinds
        if self.remoting.kind not in (*ENGINE_REMOTING, *served):
            raise FieldProblem(("remoting", "kind"), f"unknown remoting kind '{self.remoting.kind}' for a "
                               f"'{self.hypervisor.kind}' lab: one of {', '.join((*ENGINE_REMOTING, *served))}")

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
        """The lab's guests are played by a lab kind that simulates them, not by real machines."""
        return any(kind.simulates_guests for kind in kinds_of(self))

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
