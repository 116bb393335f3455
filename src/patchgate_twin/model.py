"""The twin's model of one Windows Server 2025 host: the state the probes read and updates change.

Field names follow the Windows objects they stand for (Win32_Service, NetFirewallRule, ISynchronizationInfo,
Win32_QuickFixEngineering, ...) so the probe renderers map one to one. Facts and their sources are in
docs/twin.md; anything marked [U] there is modelled but unverified on real hardware.
"""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass, field
from typing import Any, Literal

UTC = dt.timezone.utc

# The twin runs Windows time fast: one Windows second lasts this many twin seconds (a two-minute delayed start
# takes 0.6 s). Every delay a behaviour or the noise states in Windows seconds is scaled by it (docs/twin.md).
TIME_SCALE = 0.005


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass
class Service:
    """A Win32_Service instance (the fields patchgate compares)."""

    name: str
    display_name: str
    state: Literal["Running", "Stopped", "Start Pending", "Stop Pending", "Paused"] = "Running"
    start_mode: Literal["Auto", "Manual", "Disabled", "Boot", "System"] = "Auto"
    delayed_auto_start: bool = False
    trigger_start: bool = False  # has a TriggerInfo key: SCM starts and stops it on events (docs/twin.md, noise)
    start_name: str = "LocalSystem"
    path_name: str = ""
    exit_code: int = 0
    service_specific_exit_code: int = 0
    process_id: int = 0
    status: str = "OK"


@dataclass
class FirewallProfile:
    """Get-NetFirewallProfile -PolicyStore ActiveStore for one profile."""

    name: Literal["Domain", "Private", "Public"]
    enabled: bool = True
    default_inbound_action: Literal["Block", "Allow", "NotConfigured"] = "Block"
    default_outbound_action: Literal["Block", "Allow", "NotConfigured"] = "Allow"
    allow_inbound_rules: Literal["True", "False", "NotConfigured"] = "True"
    allow_local_firewall_rules: Literal["True", "False", "NotConfigured"] = "True"
    allow_local_ipsec_rules: Literal["True", "False", "NotConfigured"] = "True"
    allow_user_apps: Literal["True", "False", "NotConfigured"] = "NotConfigured"
    allow_user_ports: Literal["True", "False", "NotConfigured"] = "NotConfigured"
    notify_on_listen: Literal["True", "False", "NotConfigured"] = "False"
    log_file_name: str = r"%systemroot%\system32\LogFiles\Firewall\pfirewall.log"
    log_max_size_kilobytes: int = 4096
    log_allowed: Literal["True", "False", "NotConfigured"] = "False"
    log_blocked: Literal["True", "False", "NotConfigured"] = "False"
    log_ignored: Literal["True", "False", "NotConfigured"] = "NotConfigured"
    disabled_interface_aliases: list[str] = field(default_factory=lambda: ["NotConfigured"])


@dataclass
class FirewallRule:
    """A NetFirewallRule joined with its port, address, application and service filters."""

    name: str
    display_name: str
    group: str = ""
    enabled: bool = True
    direction: Literal["Inbound", "Outbound"] = "Inbound"
    action: Literal["Allow", "Block"] = "Allow"
    profile: str = "Any"
    protocol: str = "TCP"
    local_port: list[str] = field(default_factory=lambda: ["Any"])
    remote_port: list[str] = field(default_factory=lambda: ["Any"])
    local_address: list[str] = field(default_factory=lambda: ["Any"])
    remote_address: list[str] = field(default_factory=lambda: ["Any"])
    program: str = "Any"
    service: str = "Any"
    icmp_type: list[str] = field(default_factory=lambda: ["Any"])
    interface_type: str = "Any"  # Any | Wired | Wireless | RemoteAccess
    interface_alias: list[str] = field(default_factory=lambda: ["Any"])
    authentication: str = "NotRequired"
    encryption: str = "NotRequired"
    edge_traversal: Literal["Block", "Allow", "DeferToUser", "DeferToApp"] = "Block"
    policy_store_source_type: Literal["Local", "GroupPolicy", "Dynamic", "Generated", "Hardcoded"] = "Local"


@dataclass
class NetConnectionProfile:
    interface_alias: str
    network_category: Literal["Public", "Private", "DomainAuthenticated"] = "DomainAuthenticated"


@dataclass
class ListeningPort:
    """Get-NetTCPConnection -State Listen / Get-NetUDPEndpoint with the owning process name."""

    protocol: Literal["TCP", "UDP"]
    local_address: str
    local_port: int
    owning_process: int
    process_name: str


@dataclass
class Process:
    """Win32_Process essentials, used for the CVE-2025-59287 child-process indicators."""

    process_id: int
    name: str
    parent_process_id: int = 0
    command_line: str = ""


@dataclass
class HotFix:
    """Win32_QuickFixEngineering / Get-HotFix."""

    hotfix_id: str
    description: str = "Security Update"
    installed_on: dt.date | None = None
    installed_by: str = r"NT AUTHORITY\SYSTEM"


@dataclass
class EventRecord:
    """One event log record as Get-WinEvent returns it (the fields the probes read)."""

    log_name: Literal["System", "Application"]
    provider_name: str
    id: int
    level: Literal["Critical", "Error", "Warning", "Information"]
    time_created: dt.datetime
    message: str
    properties: list[str] = field(default_factory=list)


@dataclass
class ScheduledEvent:
    """An event that has not happened yet: written to the log (stamped on the guest's clock) once the true time
    reaches ``due``, never before (a capture taken earlier does not see it)."""

    due: dt.datetime  # true time, not the guest's clock: a clock step does not move when things happen
    event: EventRecord


@dataclass
class EnrollmentPackage:
    """HKLM:\\...\\TargetingInfo\\DynamicInstalled\\Hotpatch.amd64 (Name, Version)."""

    name: str = "Hotpatch Enrollment Package"
    version: str = "10.0.26100.1742"


@dataclass
class HotpatchState:
    enrollment_package: EnrollmentPackage | None = None
    hotpatch_table_size: int | None = None
    vbs_status: int = 0  # Win32_DeviceGuard.VirtualizationBasedSecurityStatus: 0 off, 1 enabled, 2 running
    vbs_configured: int | None = None  # EnableVirtualizationBasedSecurity registry value
    arc_enrolled: bool = False
    arc_agent_status: Literal["Connected", "Disconnected", "Expired", "NotInstalled"] = "NotInstalled"
    feature_licensing_override: bool = False  # FeatureManagement\Overrides 4264695439=1 (Oct 2025 Arc fix)
    device_licensing_mutex: bool = False  # Subscriptions\DeviceLicensingServiceCommandMutex present [U]
    license_state: Literal["Licensed", "Unlicensed", "NotApplicable"] = "NotApplicable"  # [U] twin only


@dataclass
class SyncInfo:
    """ISynchronizationInfo from GetLastSynchronizationInfo()."""

    start_time: dt.datetime
    end_time: dt.datetime
    result: Literal["NeverRun", "Succeeded", "Failed", "Canceled", "Unknown"] = "Succeeded"
    error: str = "NotApplicable"
    error_text: str = ""
    started_manually: bool = False
    update_error_count: int = 0
    id: str = "00000000-0000-0000-0000-000000000000"


@dataclass
class WsusState:
    role_installed: bool = False
    app_pool_state: Literal["Started", "Stopped", "Starting", "Stopping", "Unknown"] = "Started"
    app_pool_read_error: str | None = None  # WebAdministration and appcmd both failed to read WsusPool
    port_number: int = 8530
    using_ssl: bool = False
    content_dir: str = r"D:\WSUS"
    mu_url: str = "https://sws.update.microsoft.com"
    sync_status: Literal["NotProcessing", "Running", "Stopping"] = "NotProcessing"
    last_sync: SyncInfo | None = None
    sync_outcome: Literal["Succeeded", "Failed", "Canceled"] = "Succeeded"  # what the next sync will do
    sync_error: str = "NotApplicable"
    sync_error_text: str = ""
    # After the CVE-2025-59287 fix the WSUS console stops showing synchronization error details ([3P]); whether the
    # API's ErrorText is blanked too is [U]. The twin blanks ErrorText of failed syncs while this is set.
    error_details_hidden: bool = False
    # Twin only: the day of Microsoft's update metadata this server holds (what it offers follows the offering
    # rules of that day, docs/twin.md "WSUS offering"); None: the newest metadata
    metadata_as_of: dt.date | None = None


@dataclass
class RebootFlags:
    cbs_reboot_pending: bool = False
    cbs_reboot_in_progress: bool = False
    cbs_packages_pending: bool = False
    wu_reboot_required: bool = False
    wua_reboot_required: bool = False
    pending_file_rename_operations: list[str] = field(default_factory=list)

    def clear_after_reboot(self) -> None:
        self.cbs_reboot_pending = False
        self.cbs_reboot_in_progress = False
        self.cbs_packages_pending = False
        self.wu_reboot_required = False
        self.wua_reboot_required = False
        self.pending_file_rename_operations = []


@dataclass
class WindowsHost:
    """One twin host; deep-copied into and out of snapshots."""

    computer_name: str
    edition_id: str = "ServerDatacenter"  # ServerStandard | ServerDatacenter | ServerTurbine (Azure Edition)
    product_name: str = "Windows Server 2025 Datacenter"
    installation_type: Literal["Server", "Server Core"] = "Server"
    current_build: str = "26100"
    ubr: int = 6899
    display_version: str = "24H2"
    last_boot_up_time: dt.datetime = field(default_factory=utcnow)
    boot_id: int = 1  # PrefetchParameters\BootId: one more at every boot [U]
    clock_offset_seconds: float = 0.0  # the guest's clock minus the true time (noise: skew, step after revert)
    hotfixes: list[HotFix] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    firewall_profiles: dict[str, FirewallProfile] = field(default_factory=dict)
    firewall_rules: dict[str, FirewallRule] = field(default_factory=dict)
    connection_profiles: list[NetConnectionProfile] = field(default_factory=list)
    listening_ports: list[ListeningPort] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    hotpatch: HotpatchState = field(default_factory=HotpatchState)
    wsus: WsusState = field(default_factory=WsusState)
    reboot: RebootFlags = field(default_factory=RebootFlags)
    # staged files: Windows path (lower-case key) -> SHA-256 of the content, kept in the VM's folder on the twin's
    # disk (patchgate_twin.guestfiles), never in memory
    files: dict[str, str] = field(default_factory=dict)
    # Twin bookkeeping, not a Windows object: effects of installed updates that show only after the next restart
    # (patchgate_twin.behaviours queues them; complete_reboot applies them).
    pending_after_reboot: list[Any] = field(default_factory=list)
    # Twin bookkeeping: events that happen later (a crash seconds after an install, EventLog 6005 after a boot)
    scheduled_events: list[ScheduledEvent] = field(default_factory=list)

    @property
    def build(self) -> str:
        return f"{self.current_build}.{self.ubr}"

    @property
    def hotpatch_enrolled(self) -> bool:
        """All three local signals (enrollment package, HotPatchTableSize > 0, VBS running)."""
        hp = self.hotpatch
        return bool(hp.enrollment_package and (hp.hotpatch_table_size or 0) > 0 and hp.vbs_status == 2)

    @property
    def is_azure_edition(self) -> bool:
        return self.edition_id.startswith("ServerTurbine")  # Azure Edition Core: ServerTurbineCor [U]

    def true_time(self, guest: dt.datetime) -> dt.datetime:
        """The true time when the guest's clock shows ``guest``."""
        return guest - dt.timedelta(seconds=self.clock_offset_seconds)

    def guest_time(self, true: dt.datetime) -> dt.datetime:
        """What the guest's clock shows at true time ``true``: everything the guest stamps uses its own clock."""
        return true + dt.timedelta(seconds=self.clock_offset_seconds)

    def log_event(self, event: EventRecord, *, delay: float = 0.0) -> None:
        """Write ``event`` now (stamped ``event.time_created``, the guest's clock) or, with ``delay`` Windows
        seconds, when that time comes (scaled by TIME_SCALE; see write_due_events)."""
        if delay <= 0:
            self.events.append(event)
            return
        self.scheduled_events.append(
            ScheduledEvent(self.true_time(event.time_created) + dt.timedelta(seconds=delay * TIME_SCALE), event))

    def write_due_events(self, true_now: dt.datetime) -> int:
        """Write the scheduled events whose time has come, stamped with the guest's clock at that time."""
        due = [s for s in self.scheduled_events if s.due <= true_now]
        if not due:
            return 0
        self.scheduled_events = [s for s in self.scheduled_events if s.due > true_now]
        for item in sorted(due, key=lambda s: s.due):
            item.event.time_created = self.guest_time(item.due)
            self.events.append(item.event)
        return len(due)

    def has_kb(self, kb: str) -> bool:
        return any(h.hotfix_id.upper() == kb.upper() for h in self.hotfixes)

    def clone(self) -> "WindowsHost":
        # A pickle round trip copies this tree of plain dataclasses like deepcopy does, several times faster
        # (every revert and install clones a whole host).
        return pickle.loads(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
