"""Hand-built twin hosts for the probe round-trip tests (model -> render -> parse -> posture)."""

from __future__ import annotations

import datetime as dt

from patchgate_twin.model import (
    EnrollmentPackage,
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

UTC = dt.UTC
BOOT = dt.datetime(2025, 10, 20, 6, 0, 0, 123456, tzinfo=UTC)


def services(*extra: Service) -> dict[str, Service]:
    base = [
        Service("WinRM", "Windows Remote Management (WS-Management)", process_id=1200,
                path_name=r"C:\Windows\System32\svchost.exe -k NetworkService -p", start_name="NT AUTHORITY\\NetworkService"),
        Service("wuauserv", "Windows Update", state="Stopped", start_mode="Manual"),
        Service("mpssvc", "Windows Defender Firewall", process_id=900, start_name="NT Authority\\LocalService"),
        Service("BITS", "Background Intelligent Transfer Service", state="Stopped", start_mode="Manual",
                delayed_auto_start=False),
        Service("UsoSvc", "Update Orchestrator Service", start_mode="Auto", delayed_auto_start=True, process_id=1500),
    ]
    return {s.name: s for s in [*base, *extra]}


def firewall() -> tuple[dict[str, FirewallProfile], dict[str, FirewallRule]]:
    profiles = {n: FirewallProfile(name=n) for n in ("Domain", "Private", "Public")}
    profiles["Public"] = FirewallProfile(name="Public", log_blocked="True", disabled_interface_aliases=["Ethernet 2"])
    rules = [
        FirewallRule("WINRM-HTTP-In-TCP", "Windows Remote Management (HTTP-In)", group="@FirewallAPI.dll,-30267",
                     local_port=["5985"], profile="Domain, Private", service="Any"),
        FirewallRule("RemoteDesktop-UserMode-In-TCP", "Remote Desktop - User Mode (TCP-In)",
                     group="@FirewallAPI.dll,-28752", local_port=["3389"], enabled=False,
                     program=r"%SystemRoot%\system32\svchost.exe", service="termservice"),
        FirewallRule("CoreNet-ICMP4-DUFRAG-In", "Core Networking - Destination Unreachable (ICMPv4-In)",
                     group="Core Networking", protocol="ICMPv4", local_port=[], remote_port=[],
                     remote_address=["LocalSubnet", "10.0.0.0/8"], edge_traversal="Block"),
        FirewallRule("Block-Out-Telnet", "Block telnet <out> & 'friends'", direction="Outbound", action="Block",
                     local_port=["Any"], remote_port=["23"], policy_store_source_type="GroupPolicy"),
    ]
    return profiles, {r.name: r for r in rules}


def wsus_hotpatch_host() -> WindowsHost:
    """An Arc-enrolled WS2025 Datacenter with the WSUS role, on the October baseline + KB5070893."""
    profiles, rules = firewall()
    rules["WSUS-HTTP-In"] = FirewallRule("WSUS-HTTP-In", "WSUS HTTP", local_port=["8530"])
    return WindowsHost(
        computer_name="lab-wsus-01", ubr=6905, last_boot_up_time=BOOT,
        hotfixes=[HotFix("KB5066835", installed_on=dt.date(2025, 10, 15)),
                  HotFix("KB5070893", installed_on=dt.date(2025, 10, 24)),
                  HotFix("KB5043080", description="Update", installed_on=None)],
        services=services(
            Service("WsusService", "WSUS Service", process_id=3100, start_name="NT AUTHORITY\\NetworkService"),
            Service("W3SVC", "World Wide Web Publishing Service", process_id=3000),
            Service("himds", "Azure Hybrid Instance Metadata Service", process_id=2100),
            Service("GCArcService", "Guest Configuration Arc Service", process_id=2200),
            Service("ExtensionService", "Guest Configuration Extension Service", start_mode="Manual"),
            Service("hpatchmon", "Hotpatch Monitoring Service", state="Stopped", start_mode="Manual")),
        firewall_profiles=profiles, firewall_rules=rules,
        connection_profiles=[NetConnectionProfile("Ethernet"), NetConnectionProfile("Ethernet 2", "Private")],
        listening_ports=[ListeningPort("TCP", "0.0.0.0", 8530, 4, "System"),
                         ListeningPort("TCP", "::", 8530, 4, "System"),
                         ListeningPort("TCP", "0.0.0.0", 5985, 4, "System"),
                         ListeningPort("UDP", "0.0.0.0", 123, 1300, "svchost")],
        processes=[Process(3100, "WsusService.exe", 700, r'"C:\Program Files\Update Services\Services\WsusService.exe"'),
                   Process(3300, "w3wp.exe", 3000, r'c:\windows\system32\inetsrv\w3wp.exe -ap "WsusPool"'),
                   Process(3400, "cmd.exe", 3300, r'cmd.exe /c whoami & echo <x>'),
                   Process(5000, "explorer.exe", 600)],
        events=[
            EventRecord("System", "Service Control Manager", 7031, "Error", BOOT + dt.timedelta(hours=2),
                        "The WSUS Service service terminated unexpectedly.", ["WSUS Service", "1"]),
            EventRecord("System", "Service Control Manager", 7036, "Information", BOOT + dt.timedelta(hours=3),
                        "state change", ["WinRM", "running"]),
            EventRecord("System", "Service Control Manager", 7045, "Information", BOOT - dt.timedelta(days=2),
                        "installed before boot", ["OldSvc"]),
            EventRecord("Application", "Windows Server Update Services", 7053, "Error",
                        BOOT + dt.timedelta(hours=4), "System.InvalidCastException ObjectDataProvider"),
        ],
        hotpatch=HotpatchState(enrollment_package=EnrollmentPackage(), hotpatch_table_size=0x1000, vbs_status=2,
                               vbs_configured=1, arc_enrolled=True, arc_agent_status="Connected",
                               feature_licensing_override=True),
        wsus=WsusState(role_installed=True, last_sync=SyncInfo(
            start_time=BOOT + dt.timedelta(hours=1), end_time=BOOT + dt.timedelta(hours=1, minutes=7),
            result="Failed", error="UnknownError", error_text="WebException: The underlying connection was closed",
            update_error_count=2, id="5b7e2d3a-0000-4000-8000-000000000001")),
        reboot=RebootFlags(pending_file_rename_operations=[r"\??\C:\Temp\a.tmp", ""]),
    )


def plain_host() -> WindowsHost:
    """A not-enrolled Standard server core without WSUS, with a reboot pending and empty collections."""
    return WindowsHost(
        computer_name="lab-core-02", edition_id="ServerStandard", product_name="Windows Server 2025 Standard",
        installation_type="Server Core", ubr=6899, last_boot_up_time=BOOT,
        hotfixes=[HotFix("KB5066835", installed_on=dt.date(2025, 10, 15))],
        services=services(), hotpatch=HotpatchState(vbs_status=1),
        reboot=RebootFlags(cbs_reboot_pending=True, wua_reboot_required=True))


def stopped_wsus_host() -> WindowsHost:
    """The WSUS role installed but the service stopped: the API probe fails, the posture says so."""
    host = wsus_hotpatch_host()
    host.services["WsusService"].state = "Stopped"
    host.wsus.app_pool_state = "Stopped"
    return host
