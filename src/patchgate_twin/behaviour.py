"""Update behaviours and the engine that applies them to a twin host.

A behaviour says what installing one KB does to a Windows Server 2025 host: whether it applies at all (DISM's
"not applicable", 0x800f081e), whether it needs a restart, and which parts of the host it changes, each change
optionally guarded by a condition on the host and optionally shown only after the restart. It can also inject lab
trouble (an install that fails or hangs, a guest that never comes back). The YAML format is in docs/twin.md.

Engine entry points (stable; the twin lab and shell call them):

* ``apply_install(host, behaviour, now) -> InstallOutcome``
* ``complete_reboot(host, now)``: what a restart does (post-reboot effects, auto-start services, flags cleared)
* ``run_wsus_sync(host, now) -> SyncInfo``: one WSUS synchronization, as the host's state allows

Conditions are evaluated against the host as it was *before* the install, so the order of effects never changes
which of them apply. Side effects Windows itself would produce follow from the model: a service that stops loses
its process and logs SCM 7036, a changed start type logs 7040, a new service logs 7045.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ntpath
import typing
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from patchgate.config.policy import INVARIANTS
from patchgate_twin import specs
from patchgate_twin.model import (
    EventRecord,
    FirewallProfile,
    FirewallRule,
    HotFix,
    HotpatchState,
    ListeningPort,
    NetConnectionProfile,
    Process,
    RebootFlags,
    Service,
    SyncInfo,
    WindowsHost,
    WsusState,
)

# DISM / CBS / WUA result codes the twin reports (docs/twin.md "install results").
EXIT_SUCCESS = 0
EXIT_REBOOT_REQUIRED = 3010  # ERROR_SUCCESS_REBOOT_REQUIRED
CBS_E_NOT_APPLICABLE = -2146498530  # 0x800F081E, dism.exe "The specified package is not applicable to this image."
CBS_E_INSTALLERS_FAILED = -2146498270  # 0x800F0922
WU_S_ALREADY_INSTALLED = 2359302  # 0x00240006
TWIN_E_UNKNOWN_KB = -2145124329  # 0x80240017 WU_E_NOT_APPLICABLE: the twin has no behaviour for the KB

INVARIANT_IDS = INVARIANTS  # the suites' catalogue, which waivers are checked against too


def hresult(code: int) -> str:
    """0x-form of a (possibly negative) 32-bit result code."""
    return f"0x{code & 0xFFFFFFFF:08X}"


def _norm_kb(value: str) -> str:
    import re

    norm = value.strip().upper()
    if not re.fullmatch(r"KB\d{6,8}", norm):
        raise ValueError(f"'{value}' is not a KB id such as KB5070893")
    return norm


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------- conditions


class Condition(_Strict):
    """A test on host state. Keys in one mapping must all hold; ``any``/``all``/``not`` combine."""

    hotpatch_enrolled: bool | None = None
    wsus_role: bool | None = None
    arc_enrolled: bool | None = None
    azure_edition: bool | None = None
    edition_in: list[str] | None = None
    has_kb: list[str] | None = None
    not_kb: list[str] | None = None
    ubr_in: list[int] | None = None
    ubr_at_least: int | None = None
    ubr_below: int | None = None
    license_state: Literal["Licensed", "Unlicensed", "NotApplicable"] | None = None
    feature_licensing_override: bool | None = None
    on_hotpatch_track: bool | None = None
    service_running: str | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @field_validator("has_kb", "not_kb", mode="before")
    @classmethod
    def _kbs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [_norm_kb(v) if isinstance(v, str) else v for v in value]
        return value

    def holds(self, host: WindowsHost) -> bool:
        checks: list[bool] = []
        if self.hotpatch_enrolled is not None:
            checks.append(host.hotpatch_enrolled == self.hotpatch_enrolled)
        if self.wsus_role is not None:
            checks.append(host.wsus.role_installed == self.wsus_role)
        if self.arc_enrolled is not None:
            checks.append(host.hotpatch.arc_enrolled == self.arc_enrolled)
        if self.azure_edition is not None:
            checks.append(host.is_azure_edition == self.azure_edition)
        if self.edition_in is not None:
            checks.append(host.edition_id in self.edition_in)
        if self.has_kb is not None:
            checks.append(all(host.has_kb(k) for k in self.has_kb))
        if self.not_kb is not None:
            checks.append(not any(host.has_kb(k) for k in self.not_kb))
        if self.ubr_in is not None:
            checks.append(host.ubr in self.ubr_in)
        if self.ubr_at_least is not None:
            checks.append(host.ubr >= self.ubr_at_least)
        if self.ubr_below is not None:
            checks.append(host.ubr < self.ubr_below)
        if self.license_state is not None:
            checks.append(host.hotpatch.license_state == self.license_state)
        if self.feature_licensing_override is not None:
            checks.append(host.hotpatch.feature_licensing_override == self.feature_licensing_override)
        if self.on_hotpatch_track is not None:
            from patchgate.calendar.schedule import default_calendar

            on = default_calendar().on_track(h.hotfix_id for h in host.hotfixes)
            checks.append(on == self.on_hotpatch_track)
        if self.service_running is not None:
            svc = host.services.get(self.service_running)
            checks.append(bool(svc and svc.state == "Running"))
        if self.all is not None:
            checks.append(all(c.holds(host) for c in self.all))
        if self.any is not None:
            checks.append(any(c.holds(host) for c in self.any))
        if self.not_ is not None:
            checks.append(not self.not_.holds(host))
        return all(checks)


Condition.model_rebuild()


# ---------------------------------------------------------------- dotted paths (``set`` effects)


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def path_type(path: str) -> Any:
    """The model type at dotted ``path`` under WindowsHost; ValueError names the bad segment."""
    tp: Any = WindowsHost
    for segment in path.split("."):
        inner = _unwrap_optional(tp)
        origin = typing.get_origin(inner)
        if dataclasses.is_dataclass(inner):
            fields = specs.field_types(inner)
            if segment not in fields:
                raise ValueError(f"'{segment}' is not a field of {inner.__name__} (path '{path}'; fields: "
                                 f"{', '.join(fields)})")
            tp = fields[segment]
        elif origin is dict:
            tp = typing.get_args(inner)[1]
        elif origin is list:
            if not segment.isdigit():
                raise ValueError(f"'{segment}' must be a list index in path '{path}'")
            tp = typing.get_args(inner)[0]
        else:
            raise ValueError(f"path '{path}' goes below a plain value at '{segment}'")
    return tp


def set_path(host: WindowsHost, path: str, value: Any) -> None:
    """Assign ``value`` (validated against the model type) at dotted ``path``."""
    typed = specs.value_adapter(path_type(path)).validate_python(value)
    *parents, last = path.split(".")
    target: Any = host
    for segment in parents:
        if isinstance(target, dict):
            target = target[segment]
        elif isinstance(target, list):
            target = target[int(segment)]
        else:
            target = getattr(target, segment)
        if target is None:
            raise KeyError(f"cannot set '{path}': '{segment}' is not present on this host")
    if isinstance(target, dict):
        target[last] = typed
    elif isinstance(target, list):
        target[int(last)] = typed
    else:
        setattr(target, last, typed)


# ---------------------------------------------------------------- effects


def _check_patch(cls: type, value: Any, *, key: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of {cls.__name__} fields")  # noqa: TRY004 - pydantic reports ValueError
    spec = specs.partial(cls).model_validate(value)
    data = specs.dump(spec)
    if key and not data.get(key):
        raise ValueError(f"needs '{key}'")
    return data


class EventSpec(_Strict):
    log_name: Literal["System", "Application"] = "System"
    provider_name: str
    id: int
    level: Literal["Critical", "Error", "Warning", "Information"] = "Information"
    message: str
    properties: list[str] = Field(default_factory=list)
    offset_seconds: float = Field(0, description="event time relative to the install (or the reboot)")


class ProcessSpec(_Strict):
    name: str
    process_id: int | None = None
    parent_process_id: int | None = None
    parent_name: str | None = Field(None, description="the parent is the first process with this name")
    command_line: str = ""


class PortSpec(_Strict):
    protocol: Literal["TCP", "UDP"] = "TCP"
    local_address: str = "0.0.0.0"
    local_port: int = Field(..., ge=0, le=65535)
    owning_process: int | None = None
    process_name: str = Field(..., description="System for http.sys/SMB listeners; else the owner's image name")


class PortRef(_Strict):
    protocol: Literal["TCP", "UDP"] = "TCP"
    local_port: int = Field(..., ge=0, le=65535)
    local_address: str | None = None


class ProcessRef(_Strict):
    name: str | None = None
    process_id: int | None = None

    @model_validator(mode="after")
    def _one(self) -> ProcessRef:
        if (self.name is None) == (self.process_id is None):
            raise ValueError("give exactly one of 'name' or 'process_id'")
        return self


class InstallFailure(_Strict):
    exit_code: int = CBS_E_INSTALLERS_FAILED
    message: str = "An error occurred applying the package."


ACTIONS = ("set", "set_build", "add_hotfix", "remove_hotfix", "upsert_service", "remove_service",
           "set_firewall_profile", "upsert_firewall_rule", "remove_firewall_rule", "upsert_connection_profile",
           "remove_connection_profile", "add_listening_port", "remove_listening_port", "add_process",
           "remove_process", "add_event", "set_reboot_flags", "add_pending_file_renames", "wsus", "hotpatch")


class Effect(_Strict):
    """One change to the host. Exactly one action key, plus ``when``, ``after`` and ``note``."""

    when: Condition | None = None
    after: Literal["install", "reboot"] = "install"
    note: str = ""

    set: dict[str, Any] | None = None
    set_build: dict[str, Any] | None = None
    add_hotfix: dict[str, Any] | None = None
    remove_hotfix: str | None = None
    upsert_service: dict[str, Any] | None = None
    remove_service: str | None = None
    set_firewall_profile: dict[str, Any] | None = None
    upsert_firewall_rule: dict[str, Any] | None = None
    remove_firewall_rule: str | None = None
    upsert_connection_profile: dict[str, Any] | None = None
    remove_connection_profile: str | None = None
    add_listening_port: PortSpec | None = None
    remove_listening_port: PortRef | None = None
    add_process: ProcessSpec | None = None
    remove_process: ProcessRef | None = None
    add_event: EventSpec | None = None
    set_reboot_flags: dict[str, Any] | None = None
    add_pending_file_renames: list[str] | None = None
    wsus: dict[str, Any] | None = None
    hotpatch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Effect:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(f"an effect needs exactly one action (one of {', '.join(ACTIONS)}); got "
                             f"{', '.join(given) or 'none'}")
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    @field_validator("set")
    @classmethod
    def _set(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for path, item in (value or {}).items():
            tp = path_type(path)
            try:
                specs.value_adapter(tp).validate_python(item)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                raise ValueError(f"'{path}': {first.get('msg')}") from None
        return value

    @field_validator("set_build")
    @classmethod
    def _build(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        unknown = set(value) - {"ubr", "current_build"}
        if unknown or not isinstance(value.get("ubr"), int):
            raise ValueError("set_build takes 'ubr' (an integer) and optionally 'current_build'")
        return value

    @field_validator("remove_hotfix")
    @classmethod
    def _kb(cls, value: str | None) -> str | None:
        return _norm_kb(value) if value is not None else None

    @field_validator("add_hotfix")
    @classmethod
    def _hotfix(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        data = _check_patch(HotFix, value, key="hotfix_id")
        data["hotfix_id"] = _norm_kb(data["hotfix_id"])
        return data

    @field_validator("upsert_service")
    @classmethod
    def _service(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(Service, value, key="name")

    @field_validator("set_firewall_profile")
    @classmethod
    def _profile(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(FirewallProfile, value, key="name")

    @field_validator("upsert_firewall_rule")
    @classmethod
    def _rule(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(FirewallRule, value, key="name")

    @field_validator("upsert_connection_profile")
    @classmethod
    def _conn(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(NetConnectionProfile, value, key="interface_alias")

    @field_validator("set_reboot_flags")
    @classmethod
    def _flags(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(RebootFlags, value, key=None)

    @field_validator("wsus")
    @classmethod
    def _wsus(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(WsusState, value, key=None)

    @field_validator("hotpatch")
    @classmethod
    def _hotpatch(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_patch(HotpatchState, value, key=None)


class RestartWhen(_Strict):
    when: Condition


def _restart_tag(value: Any) -> str:
    return "restart-condition" if isinstance(value, (dict, RestartWhen)) else "restart-word"


RestartSpec = Annotated[Annotated[Literal["always", "never"], Tag("restart-word")]
                        | Annotated[RestartWhen, Tag("restart-condition")], Discriminator(_restart_tag)]


class Expect(_Strict):
    """What Microsoft's documentation implies the gate should decide for this KB on one image."""

    verdict: Literal["approve", "block", "inconclusive"]
    fails: list[str] = Field(default_factory=list, description="exactly the invariant ids that fail")
    note: str = ""

    @field_validator("fails")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in INVARIANT_IDS:
                raise ValueError(f"unknown invariant id '{item}' (known: {', '.join(sorted(INVARIANT_IDS))})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Expect:
        if self.verdict == "block" and not self.fails:
            raise ValueError("a 'block' expectation names the invariants that fail")
        if self.verdict == "approve" and self.fails:
            raise ValueError("an 'approve' expectation cannot list failing invariants")
        return self


class Behaviour(_Strict):
    """What installing one KB does. See docs/twin.md for every key."""

    kb: str
    title: str = Field(..., min_length=3)
    classification: Literal["baseline", "hotpatch", "lcu", "oob", "wsus-security", "ssu", "dotnet", "synthetic",
                            "other"]
    build: str | None = Field(None, pattern=r"^\d{5}\.\d{1,6}$")
    released: dt.date | None = None
    synthetic: bool = False
    restart: RestartSpec = "always"
    applies_to: Condition | None = None
    not_applicable_reason: str = ""
    effects: list[Effect] = Field(default_factory=list)
    install_fails: InstallFailure | None = None
    install_hangs: bool = False
    never_ready_after_reboot: bool = False
    sources: list[str] = Field(default_factory=list)
    expect: dict[str, Expect] = Field(default_factory=dict, description="image name -> expected gate verdict")
    notes: str = ""

    _source_file: str | None = None
    _source_line: int | None = None

    @field_validator("kb")
    @classmethod
    def _kb(cls, value: str) -> str:
        return _norm_kb(value)

    @field_validator("sources")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"'{url}' is not a URL")
        return value

    @model_validator(mode="after")
    def _real_needs_sources(self) -> Behaviour:
        if not self.synthetic and not self.sources:
            raise ValueError(f"{self.kb}: a behaviour for a Microsoft update cites its sources (or says "
                             "'synthetic: true')")
        return self

    def restart_needed(self, host: WindowsHost) -> bool:
        if self.restart == "always":
            return True
        if self.restart == "never":
            return False
        return self.restart.when.holds(host)

    @property
    def where(self) -> str:
        if self._source_file:
            return f"{self._source_file}:{self._source_line}" if self._source_line else self._source_file
        return "<built in>"


# ---------------------------------------------------------------- outcome


@dataclass
class InstallOutcome:
    """What one install did, as DISM/Add-WindowsPackage would report it, plus the twin's fault flags."""

    kb: str
    exit_code: int
    restart_needed: bool
    log: list[str] = field(default_factory=list)
    failed: bool = False
    not_applicable: bool = False
    already_installed: bool = False
    hangs: bool = False  # the install never finishes (the caller waits until its timeout)
    never_ready_after_reboot: bool = False  # the guest does not come back from the install's restart
    effects_applied: int = 0
    effects_pending: int = 0

    @property
    def hresult(self) -> str:
        return hresult(self.exit_code)

    @property
    def message(self) -> str:
        return self.log[-1] if self.log else ""


@dataclass
class _Pending:
    kb: str
    effect: Effect


# ---------------------------------------------------------------- engine helpers


def _next_pid(host: WindowsHost) -> int:
    return max([p.process_id for p in host.processes] + [4000]) + 4


def _services_pid(host: WindowsHost) -> int:
    return next((p.process_id for p in host.processes if p.name.lower() == "services.exe"), 0)


def _image_name(path_name: str) -> str:
    exe = path_name.strip()
    if exe.startswith('"'):
        exe = exe[1:].split('"', 1)[0]
    else:
        exe = exe.split(" -", 1)[0].split(" /", 1)[0].strip()
    return ntpath.basename(exe) or "svchost.exe"


def _scm_event(host: WindowsHost, when: dt.datetime, event_id: int, message: str, props: list[str],
               level: Literal["Critical", "Error", "Warning", "Information"] = "Information") -> None:
    host.events.append(EventRecord("System", "Service Control Manager", event_id, level, when, message, props))


def _start_service(host: WindowsHost, svc: Service) -> None:
    """Running needs a live process: reuse the recorded one or start a new one under services.exe."""
    pids = {p.process_id for p in host.processes}
    if svc.process_id and svc.process_id in pids:
        return
    svc.process_id = _next_pid(host)
    host.processes.append(Process(svc.process_id, _image_name(svc.path_name), _services_pid(host), svc.path_name))


def _stop_service(host: WindowsHost, svc: Service) -> None:
    pid = svc.process_id
    svc.process_id = 0
    if pid and not any(s.process_id == pid for s in host.services.values() if s is not svc):
        host.processes = [p for p in host.processes if p.process_id != pid]
        host.listening_ports = [lp for lp in host.listening_ports if lp.owning_process != pid]


_START_TYPE_TEXT = {"Auto": "auto start", "Manual": "demand start", "Disabled": "disabled",
                    "Boot": "boot start", "System": "system start"}


def _upsert_service(host: WindowsHost, data: dict[str, Any], now: dt.datetime) -> None:
    name = data["name"]
    existing = host.services.get(name)
    if existing is None:
        merged = {"display_name": name, "state": "Stopped", "start_mode": "Manual", **data}
        svc: Service = specs.build(Service, merged)
        host.services[name] = svc
        _scm_event(host, now, 7045, f"A service was installed in the system.\n\nService Name:  {svc.display_name}\n"
                   f"Service File Name:  {svc.path_name}\nService Type:  user mode service\nService Start Type:  "
                   f"{_START_TYPE_TEXT.get(svc.start_mode, svc.start_mode)}\nService Account:  {svc.start_name}",
                   [svc.display_name, svc.path_name, "user mode service",
                    _START_TYPE_TEXT.get(svc.start_mode, svc.start_mode), svc.start_name])
        if svc.state == "Running":
            svc.process_id = 0
            _start_service(host, svc)
        return
    before_state, before_mode = existing.state, existing.start_mode
    merged = {**dataclasses.asdict(existing), **data}
    svc = specs.build(Service, merged)
    host.services[name] = svc
    if svc.start_mode != before_mode:
        _scm_event(host, now, 7040, f"The start type of the {svc.display_name} service was changed from "
                   f"{_START_TYPE_TEXT.get(before_mode, before_mode)} to "
                   f"{_START_TYPE_TEXT.get(svc.start_mode, svc.start_mode)}.",
                   [svc.display_name, _START_TYPE_TEXT.get(before_mode, before_mode),
                    _START_TYPE_TEXT.get(svc.start_mode, svc.start_mode), name])
    if svc.state != before_state:
        if svc.state == "Stopped":
            _stop_service(host, svc)
        elif svc.state == "Running":
            if "process_id" not in data:
                svc.process_id = 0
            _start_service(host, svc)
        word = {"Running": "running", "Stopped": "stopped"}.get(svc.state, svc.state.lower())
        _scm_event(host, now, 7036, f"The {svc.display_name} service entered the {word} state.",
                   [svc.display_name, word])


def _remove_service(host: WindowsHost, name: str) -> None:
    svc = host.services.pop(name, None)
    if svc is not None and svc.process_id:
        _stop_service(host, svc)


def _find_process(host: WindowsHost, name: str) -> Process | None:
    return next((p for p in host.processes if p.name.lower() == name.lower()), None)


def _patch_dataclass(obj: Any, data: dict[str, Any]) -> Any:
    merged = {**dataclasses.asdict(obj), **data}
    return specs.build(type(obj), merged)


def apply_effect(host: WindowsHost, effect: Effect, now: dt.datetime) -> None:
    """Apply one effect (its ``when`` was already decided by the caller)."""
    action = effect.action
    value = getattr(effect, action)
    if action == "set":
        for path, item in value.items():
            set_path(host, path, item)
    elif action == "set_build":
        host.ubr = int(value["ubr"])
        if "current_build" in value:
            host.current_build = str(value["current_build"])
    elif action == "add_hotfix":
        kb = value["hotfix_id"]
        host.hotfixes = [h for h in host.hotfixes if h.hotfix_id.upper() != kb]
        host.hotfixes.append(specs.build(HotFix, {"installed_on": now.date(), **value}))
    elif action == "remove_hotfix":
        host.hotfixes = [h for h in host.hotfixes if h.hotfix_id.upper() != value]
    elif action == "upsert_service":
        _upsert_service(host, value, now)
    elif action == "remove_service":
        _remove_service(host, value)
    elif action == "set_firewall_profile":
        name = value["name"]
        current = host.firewall_profiles.get(name) or FirewallProfile(name=name)
        host.firewall_profiles[name] = _patch_dataclass(current, value)
    elif action == "upsert_firewall_rule":
        name = value["name"]
        current = host.firewall_rules.get(name) or FirewallRule(name=name, display_name=name)
        host.firewall_rules[name] = _patch_dataclass(current, value)
    elif action == "remove_firewall_rule":
        host.firewall_rules.pop(value, None)
    elif action == "upsert_connection_profile":
        alias = value["interface_alias"]
        for i, prof in enumerate(host.connection_profiles):
            if prof.interface_alias == alias:
                host.connection_profiles[i] = _patch_dataclass(prof, value)
                break
        else:
            host.connection_profiles.append(specs.build(NetConnectionProfile, value))
    elif action == "remove_connection_profile":
        host.connection_profiles = [p for p in host.connection_profiles if p.interface_alias != value]
    elif action == "add_listening_port":
        spec: PortSpec = value
        pid = spec.owning_process
        if pid is None:
            proc = _find_process(host, spec.process_name)
            pid = proc.process_id if proc else (4 if spec.process_name == "System" else 0)
        host.listening_ports.append(ListeningPort(spec.protocol, spec.local_address, spec.local_port, pid,
                                                  spec.process_name))
    elif action == "remove_listening_port":
        ref: PortRef = value
        host.listening_ports = [
            lp for lp in host.listening_ports
            if not (lp.protocol == ref.protocol and lp.local_port == ref.local_port
                    and (ref.local_address is None or lp.local_address == ref.local_address))]
    elif action == "add_process":
        pspec: ProcessSpec = value
        parent = pspec.parent_process_id
        if parent is None and pspec.parent_name:
            found = _find_process(host, pspec.parent_name)
            parent = found.process_id if found else 0
        host.processes.append(Process(pspec.process_id or _next_pid(host), pspec.name, parent or 0,
                                      pspec.command_line))
    elif action == "remove_process":
        pref: ProcessRef = value
        host.processes = [p for p in host.processes
                          if not (p.process_id == pref.process_id
                                  or (pref.name is not None and p.name.lower() == pref.name.lower()))]
    elif action == "add_event":
        ev: EventSpec = value
        # written when it happens: offset_seconds (Windows seconds, scaled) after the install or the reboot
        host.log_event(EventRecord(ev.log_name, ev.provider_name, ev.id, ev.level, now, ev.message,
                                   list(ev.properties)), delay=ev.offset_seconds)
    elif action == "set_reboot_flags":
        host.reboot = _patch_dataclass(host.reboot, value)
    elif action == "add_pending_file_renames":
        host.reboot.pending_file_rename_operations.extend(value)
    elif action == "wsus":
        host.wsus = _patch_dataclass(host.wsus, value)
    elif action == "hotpatch":
        host.hotpatch = _patch_dataclass(host.hotpatch, value)
    else:  # pragma: no cover - the model validator lists every action
        raise AssertionError(action)


# ---------------------------------------------------------------- engine


def _apply_logged(host: WindowsHost, effect: Effect, now: dt.datetime, log: list[str], kb: str) -> bool:
    """Apply one effect; one that names something this host lacks (``set: services.himds.state`` on a host
    without himds) is skipped with a log line instead of failing the install: guard it with ``when``."""
    try:
        apply_effect(host, effect, now)
        return True
    except (KeyError, IndexError) as exc:
        log.append(f"{kb}: twin effect '{effect.action}' skipped: {exc} is not present on this host")
        return False


def apply_install(host: WindowsHost, behaviour: Behaviour, now: dt.datetime) -> InstallOutcome:
    """Install ``behaviour.kb`` on ``host`` (mutated in place) as DISM would, at model time ``now``."""
    kb = behaviour.kb
    log = [f"{now.isoformat()} Installing {kb}: {behaviour.title}"]
    if behaviour.install_hangs:
        log.append(f"{kb}: the install does not finish (behaviour sets install_hangs)")
        return InstallOutcome(kb, EXIT_SUCCESS, False, log, hangs=True)
    if behaviour.install_fails is not None:
        failure = behaviour.install_fails
        log.append(f"Error: {hresult(failure.exit_code)} {failure.message}")
        return InstallOutcome(kb, failure.exit_code, False, log, failed=True)
    if host.has_kb(kb) or any(p.kb == kb for p in host.pending_after_reboot):
        pending = bool(host.reboot.cbs_reboot_pending and any(p.kb == kb for p in host.pending_after_reboot))
        log.append(f"Package {kb} is already installed ({hresult(WU_S_ALREADY_INSTALLED)} "
                   f"WU_S_ALREADY_INSTALLED){'; a restart is still pending' if pending else ''}")
        return InstallOutcome(kb, EXIT_REBOOT_REQUIRED if pending else EXIT_SUCCESS, pending, log,
                              already_installed=True)
    before = host.clone()
    if behaviour.applies_to is not None and not behaviour.applies_to.holds(before):
        reason = behaviour.not_applicable_reason or "its applicability rules do not match this host"
        log.append(f"{kb} is not applicable to this host (build {host.build}): {reason}")
        log.append(f"Error: {hresult(CBS_E_NOT_APPLICABLE)} The specified package is not applicable to this image.")
        return InstallOutcome(kb, CBS_E_NOT_APPLICABLE, False, log, failed=True, not_applicable=True)
    restart = behaviour.restart_needed(before)
    applied = pending = 0
    for effect in behaviour.effects:
        if effect.when is not None and not effect.when.holds(before):
            continue
        if effect.after == "reboot":
            host.pending_after_reboot.append(_Pending(kb, effect))
            pending += 1
        elif _apply_logged(host, effect, now, log, kb):
            applied += 1
    if restart:
        host.reboot.cbs_reboot_pending = True
        host.reboot.wua_reboot_required = True
        log.append(f"{kb} installed; a restart is required to complete the operation "
                   f"(exit code {EXIT_REBOOT_REQUIRED})")
    else:
        log.append(f"{kb} installed; no restart required")
    return InstallOutcome(kb, EXIT_REBOOT_REQUIRED if restart else EXIT_SUCCESS, restart, log,
                          never_ready_after_reboot=behaviour.never_ready_after_reboot,
                          effects_applied=applied, effects_pending=pending)


def complete_reboot(host: WindowsHost, now: dt.datetime, *, shutdown_at: dt.datetime | None = None) -> None:
    """What a restart does, at the time it does it (``shutdown_at`` the shutdown, ``now`` the boot, both on the
    guest's clock): User32 1074 and EventLog 6006 at the shutdown, Kernel-General 12 at the boot and EventLog 6005
    once the event log service is up (12 Windows seconds later, scaled), reboot flags cleared, LastBootUpTime set
    to ``now``, auto-start services started and the queued post-reboot effects applied at the boot. 6005 is logged
    "at boot time noting that the Event Log service was started", 6006 at a clean shutdown (Microsoft KB 196452,
    https://support.microsoft.com/help/196452); the 12 s delay is the twin's own figure [U]."""
    initiator = r"C:\Windows\servicing\TrustedInstaller.exe" if host.reboot.cbs_reboot_pending else \
        r"C:\Windows\system32\shutdown.exe"
    down = shutdown_at or now
    host.log_event(EventRecord("System", "User32", 1074, "Information", down,
                               f"The process {initiator} ({host.computer_name}) has initiated the restart of "
                               f"computer {host.computer_name} on behalf of user NT AUTHORITY\\SYSTEM for the "
                               "following reason: Operating System: Upgrade (Planned)",
                               [initiator, host.computer_name, "Operating System: Upgrade (Planned)",
                                "0x80020003", "restart"]))
    host.log_event(EventRecord("System", "EventLog", 6006, "Information", down, "The Event log service was stopped."))
    host.log_event(EventRecord("System", "Microsoft-Windows-Kernel-General", 12, "Information", now,
                               f"The operating system started at system time {now.isoformat()}."))
    host.log_event(EventRecord("System", "EventLog", 6005, "Information", now, "The Event log service was started."),
                   delay=12)
    host.reboot.clear_after_reboot()
    host.last_boot_up_time = now
    for svc in host.services.values():
        if svc.start_mode == "Auto" and svc.state != "Running":
            svc.state = "Running"
            _start_service(host, svc)
        elif svc.start_mode in ("Manual", "Disabled") and svc.state == "Running" and \
                _image_name(svc.path_name).lower() == "trustedinstaller.exe":
            svc.state = "Stopped"
            _stop_service(host, svc)
    pending, host.pending_after_reboot = host.pending_after_reboot, []
    for item in pending:
        _apply_logged(host, item.effect, now, [], item.kb)


class WsusRoleMissing(RuntimeError):
    """run_wsus_sync on a host without the WSUS Server role (Get-WsusServer would fail)."""


def run_wsus_sync(host: WindowsHost, now: dt.datetime, *, manual: bool = True,
                  duration: dt.timedelta = dt.timedelta(0)) -> SyncInfo:
    """One synchronization with Microsoft Update, as the host's WSUS state allows; recorded in ``last_sync``.

    It fails when the WSUS service, IIS (W3SVC) or the database is not running, when the WsusPool app pool is not
    Started, or when a behaviour set ``wsus.sync_outcome`` to Failed/Canceled. Error strings for failures are the
    twin's own [U]; ErrorText is blank while ``error_details_hidden`` is set.
    """
    wsus = host.wsus
    if not wsus.role_installed:
        raise WsusRoleMissing(f"{host.computer_name} has no WSUS Server role")

    def running(name: str) -> bool:
        svc = host.services.get(name)
        return bool(svc and svc.state == "Running")

    result: Literal["Succeeded", "Failed", "Canceled"] = "Succeeded"
    error, text = "NotApplicable", ""
    if not running("WsusService"):
        result, error, text = "Failed", "UnknownError", "The WSUS service (WsusService) is not running."
    elif not running("W3SVC") or wsus.app_pool_state != "Started":
        result, error, text = "Failed", "UnknownError", \
            "The request failed with HTTP status 503: Service Unavailable (WsusPool is not started)."
    elif not running("MSSQL$MICROSOFT##WID") and "MSSQL$MICROSOFT##WID" in host.services:
        result, error, text = "Failed", "UnknownError", "Cannot open the SUSDB database (WID is not running)."
    elif wsus.sync_outcome != "Succeeded":
        result = wsus.sync_outcome
        error = wsus.sync_error if wsus.sync_error != "NotApplicable" else \
            ("UserCanceled" if result == "Canceled" else "UnknownError")
        text = wsus.sync_error_text
    if wsus.error_details_hidden and result == "Failed":
        text = ""
    info = SyncInfo(start_time=now, end_time=now + duration, result=result, error=error, error_text=text,
                    started_manually=manual, update_error_count=0 if result == "Succeeded" else 1,
                    id=str(uuid.uuid4()))
    wsus.last_sync = info
    wsus.sync_status = "NotProcessing"
    return info


__all__ = [
    "CBS_E_NOT_APPLICABLE",
    "EXIT_REBOOT_REQUIRED",
    "EXIT_SUCCESS",
    "INVARIANT_IDS",
    "TWIN_E_UNKNOWN_KB",
    "WU_S_ALREADY_INSTALLED",
    "Behaviour",
    "Condition",
    "Effect",
    "Expect",
    "InstallOutcome",
    "WsusRoleMissing",
    "apply_effect",
    "apply_install",
    "complete_reboot",
    "hresult",
    "path_type",
    "run_wsus_sync",
    "set_path",
]
