"""Typed, frozen snapshots of what one capture saw on one VM, per area.

A posture is plain data: the probes (``patchgate/probes/*.ps1``) print JSON, the parsers in
``patchgate.probes.parsers`` turn it into these dataclasses, and invariants compare a baseline posture with a
post-update posture (usually through :func:`patchgate.model.diff.diff_keyed`). Nothing here talks to a VM, so suites
and the twin can build postures directly.

Conventions: timestamps are timezone-aware UTC ``datetime``; a value the host did not have is ``None``;
collections keyed by their Windows identity (service ``Name``, firewall rule ``Name``, KB id) are dicts; others
are tuples. ``to_dict()`` gives a JSON-ready dict for report attachments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patchgate.errors import ProbeError
from patchgate.model.kb import is_kb_id, kb_id

AREAS: tuple[str, ...] = ("hotpatch", "wsus", "services", "firewall", "updates", "reboot", "events", "ports",
                          "processes")
"""Every probe area, in capture order."""

HOTPATCH_PACKAGE_NAME = "Hotpatch Enrollment Package"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """Turn posture values into JSON types: datetimes to ISO 8601, tuples to lists, dict keys to strings."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES.setdefault(kind, tuple(f.name for f in dataclasses.fields(value)))
    if names is not None:
        return {name: _jsonable(getattr(value, name)) for name in names}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {(k if isinstance(k, str) else "/".join(str(p) for p in k) if isinstance(k, tuple) else str(k)):
                _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        return _jsonable(self)


# ----------------------------------------------------------------------------------------------- services

@dataclass(frozen=True)
class ServiceInfo(_ToDict):
    """One Win32_Service instance (the fields worth comparing before and after an update)."""

    name: str
    display_name: str | None = None
    state: str | None = None  # Running | Stopped | Start Pending | Stop Pending | Paused | ...
    start_mode: str | None = None  # Auto | Manual | Disabled | Boot | System
    delayed_auto_start: bool | None = None
    trigger_start: bool | None = None  # has SCM triggers: starts and stops on events (docs/probes.md#services)
    status: str | None = None  # OK | Degraded | Error | ...
    exit_code: int | None = None
    service_specific_exit_code: int | None = None
    process_id: int | None = None
    start_name: str | None = None
    path_name: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "Running"

    @property
    def automatic(self) -> bool:
        return self.start_mode == "Auto"


SERVICE_DIFF_FIELDS: tuple[str, ...] = ("start_mode", "delayed_auto_start", "start_name", "path_name", "state")
"""Fields an invariant normally compares; ``state`` matters only for Auto services (see docs/probes.md)."""


@dataclass(frozen=True)
class ServicesPosture(_ToDict):
    services: dict[str, ServiceInfo] = field(default_factory=dict)

    def get(self, name: str) -> ServiceInfo | None:
        """Service by name, case-insensitively (Windows service names are)."""
        if name in self.services:
            return self.services[name]
        low = name.lower()
        return next((s for k, s in self.services.items() if k.lower() == low), None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


# ----------------------------------------------------------------------------------------------- hotpatch

@dataclass(frozen=True)
class ArcServiceInfo(_ToDict):
    """Get-Service for one of the Arc/hotpatch services (himds, GCArcService, ExtensionService, hpatchmon)."""

    name: str
    status: str | None = None  # Running | Stopped | ...
    start_type: str | None = None  # Automatic | Manual | Disabled | Boot | System


@dataclass(frozen=True)
class HotpatchPosture(_ToDict):
    """The local signals of hotpatch enrollment and the Arc agent around it."""

    vbs_status: int | None = None  # Win32_DeviceGuard.VirtualizationBasedSecurityStatus: 0 off, 1 enabled, 2 running
    vbs_configured: int | None = None  # DeviceGuard\EnableVirtualizationBasedSecurity
    hotpatch_table_size: int | None = None  # Memory Management\HotPatchTableSize
    architecture: str = "amd64"
    package_name: str | None = None  # TargetingInfo\DynamicInstalled\Hotpatch.<arch>\Name
    package_version: str | None = None
    arc_agent_installed: bool = False
    arc_agent_status: str | None = None  # azcmagent show -j: status (Connected | Disconnected | Expired)
    arc_services: dict[str, ArcServiceInfo] = field(default_factory=dict)
    feature_licensing_override: int | None = None  # FeatureManagement\Overrides value 4264695439 (Oct 2025 fix)
    device_licensing_mutex: bool = False  # Subscriptions\DeviceLicensingServiceCommandMutex present [U]

    @property
    def package_present(self) -> bool:
        return self.package_name == HOTPATCH_PACKAGE_NAME

    @property
    def vbs_running(self) -> bool:
        return self.vbs_status == 2

    @property
    def enrolled(self) -> bool:
        """All three local signals: enrollment package, HotPatchTableSize > 0, VBS running."""
        return self.package_present and (self.hotpatch_table_size or 0) > 0 and self.vbs_running

    @property
    def arc_connected(self) -> bool:
        return self.arc_agent_status == "Connected"


# ----------------------------------------------------------------------------------------------- wsus

@dataclass(frozen=True)
class SyncInfo(_ToDict):
    """ISynchronizationInfo from IUpdateServerSubscription.GetLastSynchronizationInfo()."""

    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    result: str | None = None  # NeverRun | Succeeded | Failed | Canceled | Unknown
    error: str | None = None  # NotApplicable when no error
    error_text: str | None = None
    started_manually: bool | None = None
    update_error_count: int | None = None
    id: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.result == "Succeeded"


@dataclass(frozen=True)
class WsusPosture(_ToDict):
    """The WSUS server role: feature, API reachability, app pool, configuration and last synchronisation."""

    role_installed: bool = False  # Get-WindowsFeature UpdateServices
    features: dict[str, bool] = field(default_factory=dict)  # UpdateServices* name -> Installed
    api_available: bool = False  # Get-WsusServer answered
    api_error: str | None = None
    app_pool_state: str | None = None  # WsusPool: Started | Stopped | ...
    app_pool_error: str | None = None  # the app pool could not be read (WebAdministration and appcmd failed)
    port_number: int | None = None
    using_ssl: bool | None = None
    content_dir: str | None = None
    mu_url: str | None = None
    sync_status: str | None = None  # NotProcessing | Running | Stopping
    last_synchronization_time: dt.datetime | None = None
    last_sync: SyncInfo | None = None


# ----------------------------------------------------------------------------------------------- firewall

@dataclass(frozen=True)
class FirewallProfileInfo(_ToDict):
    """Get-NetFirewallProfile -PolicyStore ActiveStore; GpoBoolean values: True, False or None (NotConfigured)."""

    name: str
    enabled: bool | None = None
    default_inbound_action: str | None = None  # Block | Allow | NotConfigured
    default_outbound_action: str | None = None
    allow_inbound_rules: bool | None = None
    allow_local_firewall_rules: bool | None = None
    allow_local_ipsec_rules: bool | None = None
    allow_user_apps: bool | None = None
    allow_user_ports: bool | None = None
    notify_on_listen: bool | None = None
    log_file_name: str | None = None
    log_max_size_kilobytes: int | None = None
    log_allowed: bool | None = None
    log_blocked: bool | None = None
    log_ignored: bool | None = None
    disabled_interface_aliases: tuple[str, ...] = ()


PROFILE_DIFF_FIELDS: tuple[str, ...] = (
    "enabled", "default_inbound_action", "default_outbound_action", "allow_inbound_rules",
    "allow_local_firewall_rules", "allow_local_ipsec_rules", "allow_user_apps", "allow_user_ports", "notify_on_listen",
    "log_allowed", "log_blocked", "log_ignored", "log_file_name", "log_max_size_kilobytes", "disabled_interface_aliases")


@dataclass(frozen=True)
class FirewallRuleInfo(_ToDict):
    """A NetFirewallRule joined (by InstanceID) with its port, address, application and service filters."""

    name: str
    display_name: str | None = None
    group: str | None = None
    enabled: bool = True
    direction: str | None = None  # Inbound | Outbound
    action: str | None = None  # Allow | Block
    profile: str | None = None  # Any | Domain | "Domain, Private" | ...
    protocol: str | None = None  # TCP | UDP | Any | ICMPv4 | a number
    local_port: tuple[str, ...] = ()
    remote_port: tuple[str, ...] = ()
    local_address: tuple[str, ...] = ()
    remote_address: tuple[str, ...] = ()
    program: str | None = None
    service: str | None = None
    icmp_type: tuple[str, ...] = ()  # port filter IcmpType ("8" or "8:0"; Any)
    interface_type: str | None = None  # Any | Wired | Wireless | RemoteAccess
    interface_alias: tuple[str, ...] = ()  # interface filter
    authentication: str | None = None  # security filter: NotRequired | Required | NoEncap
    encryption: str | None = None  # NotRequired | Required | Dynamic
    edge_traversal: str | None = None  # Block | Allow | DeferToUser | DeferToApp
    policy_store_source_type: str | None = None  # Local | GroupPolicy | Dynamic | Generated | Hardcoded

    @property
    def inbound_allow_from_any(self) -> bool:
        """An enabled inbound Allow rule whose RemoteAddress is Any: the exposure worth flagging when new."""
        return (self.enabled and self.direction == "Inbound" and self.action == "Allow"
                and (not self.remote_address or "Any" in self.remote_address))


RULE_DIFF_FIELDS: tuple[str, ...] = (
    "enabled", "action", "direction", "profile", "protocol", "local_port", "remote_address", "program", "service",
    "edge_traversal", "group", "icmp_type", "interface_type", "interface_alias", "authentication", "encryption")


@dataclass(frozen=True)
class ConnectionProfileInfo(_ToDict):
    interface_alias: str
    network_category: str | None = None  # Public | Private | DomainAuthenticated


@dataclass(frozen=True)
class FirewallPosture(_ToDict):
    profiles: dict[str, FirewallProfileInfo] = field(default_factory=dict)  # Domain / Private / Public
    rules: dict[str, FirewallRuleInfo] = field(default_factory=dict)  # by rule Name (DisplayName is localized)
    connection_profiles: tuple[ConnectionProfileInfo, ...] = ()


# ----------------------------------------------------------------------------------------------- updates

@dataclass(frozen=True)
class HotFixInfo(_ToDict):
    """Get-HotFix (Win32_QuickFixEngineering) for one KB."""

    hotfix_id: str
    description: str | None = None
    installed_on: dt.date | None = None
    installed_by: str | None = None


@dataclass(frozen=True)
class UpdatesPosture(_ToDict):
    """OS build identity and installed KBs. Both KB5070881 and KB5070893 report 26100.6905: compare KBs."""

    current_build: str | None = None
    ubr: int | None = None
    display_version: str | None = None
    edition_id: str | None = None
    product_name: str | None = None
    installation_type: str | None = None
    hotfixes: dict[str, HotFixInfo] = field(default_factory=dict)  # by upper-case KB id ("KB5070893")
    last_boot_up_time: dt.datetime | None = None

    @property
    def azure_edition(self) -> bool:
        """Datacenter: Azure Edition (hotpatch without Arc). EditionID ServerTurbine; the Core installation may read
        ServerTurbineCor [U], so the prefix decides."""
        return (self.edition_id or "").startswith("ServerTurbine")

    @property
    def build(self) -> str | None:
        """``CurrentBuild.UBR`` such as ``26100.6905``."""
        if self.current_build is None or self.ubr is None:
            return None
        return f"{self.current_build}.{self.ubr}"

    @property
    def kb_ids(self) -> frozenset[str]:
        return frozenset(self.hotfixes)

    def has_kb(self, kb: str) -> bool:
        return is_kb_id(kb, bare_number=True) and kb_id(kb, bare_number=True) in self.hotfixes


# ----------------------------------------------------------------------------------------------- reboot

@dataclass(frozen=True)
class BootEvent(_ToDict):
    """One System event that proves a shutdown or a start (6005/6006/6008 EventLog, 1074 User32, 12/13
    Kernel-General)."""

    id: int
    provider_name: str
    time_created: dt.datetime | None = None


@dataclass(frozen=True)
class RebootPosture(_ToDict):
    cbs_reboot_pending: bool = False
    cbs_reboot_in_progress: bool = False  # [U]
    cbs_packages_pending: bool = False  # [U]
    wu_reboot_required: bool = False
    wua_reboot_required: bool | None = None  # always None: ISystemInformation is not usable remotely (docs/probes.md)
    pending_file_rename_operations: tuple[str, ...] | None = None  # the VALUE; None when absent
    boot_id: int | None = None  # PrefetchParameters\BootId; None when unreadable [U]
    boot_events: tuple[BootEvent, ...] = ()  # restart events since the capture's Since (none without one)

    @property
    def pending(self) -> bool:
        """A reboot is pending per CBS, WU or WUA. PendingFileRenameOperations is noisy and not counted."""
        return bool(self.cbs_reboot_pending or self.cbs_reboot_in_progress or self.cbs_packages_pending
                    or self.wu_reboot_required or self.wua_reboot_required)

    @property
    def pending_file_rename(self) -> bool:
        return bool(self.pending_file_rename_operations)


# ----------------------------------------------------------------------------------------------- events

SCM_EVENT_IDS: tuple[int, ...] = (7000, 7001, 7009, 7011, 7022, 7023, 7024, 7026, 7031, 7032, 7034, 7040, 7045)
SCM_FAILURE_IDS: frozenset[int] = frozenset({7000, 7001, 7009, 7011, 7022, 7023, 7024, 7026, 7031, 7032, 7034})
WSUS_EXPLOIT_EVENT_ID = 7053


@dataclass(frozen=True)
class EventInfo(_ToDict):
    log_name: str
    provider_name: str
    id: int
    level: str | None = None
    time_created: dt.datetime | None = None
    service: str | None = None  # Properties[0]: the service name for SCM events
    message: str | None = None


@dataclass(frozen=True)
class EventsPosture(_ToDict):
    since: dt.datetime | None = None
    events: tuple[EventInfo, ...] = ()

    def with_ids(self, ids: Iterable[int], provider: str | None = None) -> tuple[EventInfo, ...]:
        wanted = set(ids)
        return tuple(e for e in self.events if e.id in wanted and (provider is None or e.provider_name == provider))

    @property
    def service_failures(self) -> tuple[EventInfo, ...]:
        """SCM crash/failed-start events (not 7040 start-type change or 7045 install)."""
        return self.with_ids(SCM_FAILURE_IDS, "Service Control Manager")

    def for_service(self, name: str) -> tuple[EventInfo, ...]:
        low = name.lower()
        return tuple(e for e in self.events if (e.service or "").lower() == low)


# ----------------------------------------------------------------------------------------------- ports

@dataclass(frozen=True)
class ListenerInfo(_ToDict):
    """One Get-NetTCPConnection -State Listen or Get-NetUDPEndpoint row."""

    protocol: str  # TCP | UDP
    local_address: str
    local_port: int
    owning_process: int | None = None
    process_name: str | None = None


@dataclass(frozen=True)
class PortBinding(_ToDict):
    """Every listener on one (protocol, port), merged across addresses; what a port diff compares."""

    protocol: str
    port: int
    local_addresses: tuple[str, ...] = ()
    process_names: tuple[str, ...] = ()


PORT_DIFF_FIELDS: tuple[str, ...] = ("local_addresses", "process_names")


@dataclass(frozen=True)
class PortsPosture(_ToDict):
    listeners: tuple[ListenerInfo, ...] = ()

    def keyed(self) -> dict[tuple[str, int], PortBinding]:
        """Listeners by (protocol, port), for diff_keyed."""
        groups: dict[tuple[str, int], list[ListenerInfo]] = {}
        for item in self.listeners:
            groups.setdefault((item.protocol, item.local_port), []).append(item)
        return {key: PortBinding(protocol=key[0], port=key[1],
                                 local_addresses=tuple(sorted({i.local_address for i in items})),
                                 process_names=tuple(sorted({i.process_name or "?" for i in items})))
                for key, items in sorted(groups.items())}

    def listening(self, port: int, protocol: str = "TCP") -> bool:
        return any(i.local_port == port and i.protocol == protocol for i in self.listeners)


# ----------------------------------------------------------------------------------------------- processes

SUSPICIOUS_CHILDREN: frozenset[str] = frozenset(
    {"cmd.exe", "powershell.exe", "pwsh.exe", "rundll32.exe", "curl.exe", "mshta.exe", "certutil.exe"})


@dataclass(frozen=True)
class ProcessInfo(_ToDict):
    process_id: int
    name: str
    parent_process_id: int | None = None
    command_line: str | None = None


@dataclass(frozen=True)
class ProcessesPosture(_ToDict):
    """WSUS hosting processes (wsusservice.exe, w3wp.exe) and their direct children."""

    processes: tuple[ProcessInfo, ...] = ()

    def children_of(self, parent_names: Iterable[str]) -> tuple[ProcessInfo, ...]:
        names = {n.lower() for n in parent_names}
        parents = {p.process_id for p in self.processes if p.name.lower() in names}
        return tuple(p for p in self.processes if p.parent_process_id in parents)

    @property
    def suspicious_wsus_children(self) -> tuple[ProcessInfo, ...]:
        """cmd/powershell/rundll32/curl... spawned by wsusservice.exe or w3wp.exe (CVE-2025-59287 IOC)."""
        return tuple(p for p in self.children_of(("wsusservice.exe", "w3wp.exe"))
                     if p.name.lower() in SUSPICIOUS_CHILDREN)


# ----------------------------------------------------------------------------------------------- all areas

@dataclass(frozen=True)
class Posture(_ToDict):
    """Everything one capture saw on one VM. An area is None when not captured or when its probe failed;
    ``errors`` then says why, and :meth:`area` turns that into a ProbeError (a *broken* check, not a failure)."""

    captured_at: dt.datetime
    vm: str | None = None
    computer_name: str | None = None
    hotpatch: HotpatchPosture | None = None
    wsus: WsusPosture | None = None
    services: ServicesPosture | None = None
    firewall: FirewallPosture | None = None
    updates: UpdatesPosture | None = None
    reboot: RebootPosture | None = None
    events: EventsPosture | None = None
    ports: PortsPosture | None = None
    processes: ProcessesPosture | None = None
    errors: dict[str, str] = field(default_factory=dict)  # area -> why its probe failed

    def area(self, name: str) -> Any:
        """The posture of one area, or ProbeError naming the VM and area when it is missing."""
        if name not in AREAS:
            raise ValueError(f"unknown probe area '{name}' (known: {', '.join(AREAS)})")
        value = getattr(self, name)
        if value is None:
            why = self.errors.get(name, "the area was not captured")
            raise ProbeError(f"probe '{name}' has no result: {why}", vm=self.vm, step=f"probe:{name}")
        return value
