"""What each probe script would print on a twin host: the JSON text, rendered from the model.

The twin never answers with posture objects: it prints the same JSON the real ``.ps1`` prints on Windows
Server 2025, so the real parsers run on every twin capture. Keys, key order, value kinds (enum names as
strings, ISO 8601 round-trip dates, arrays that stay arrays) follow the scripts in ``patchgate/probes``.

Formatting mimics Windows PowerShell 5.1 ``ConvertTo-Json -Compress``: no whitespace, and ``<``, ``>``, ``&``
and ``'`` escaped as ``\\u003c`` etc. (5.1 serialises through .NET's JavaScriptSerializer [U]).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from patchgate.model.posture import SCM_EVENT_IDS, WSUS_EXPLOIT_EVENT_ID
from patchgate.probes.batch import ENVELOPE_TAG, OP_LINE, capture_areas
from patchgate_twin.model import WindowsHost, utcnow

UTC = dt.UTC
PROBE_LINE = re.compile(r"^\s*#\s*patchgate-probe:\s*(?P<area>[A-Za-z0-9_-]+)")

_PS51_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"}
_PS51_ESCAPE_RE = re.compile("[<>&']")

# Get-Service (ServiceController) names for Win32_Service values
_SERVICE_STATUS = {"Running": "Running", "Stopped": "Stopped", "Start Pending": "StartPending",
                   "Stop Pending": "StopPending", "Paused": "Paused", "Continue Pending": "ContinuePending",
                   "Pause Pending": "PausePending"}
_START_TYPE = {"Auto": "Automatic", "Manual": "Manual", "Disabled": "Disabled", "Boot": "Boot", "System": "System"}
_EVENT_LEVEL = {"Critical": 1, "Error": 2, "Warning": 3, "Information": 4}
ARC_SERVICES = ("himds", "GCArcService", "ExtensionService", "arcproxy", "hpatchmon")
WSUS_FEATURES = ("UpdateServices", "UpdateServices-WidDB", "UpdateServices-Services", "UpdateServices-DB",
                 "UpdateServices-RSAT", "UpdateServices-API", "UpdateServices-UI")  # [U] exact WS2025 list
WSUS_UNAVAILABLE = "The request failed with HTTP status 503: Service Unavailable."  # [U] exact text


def ps51_json(value: Any) -> str:
    """JSON as Windows PowerShell 5.1 ``ConvertTo-Json -Compress`` prints it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _PS51_ESCAPE_RE.sub(lambda m: _PS51_ESCAPES[m.group(0)], text)


def iso(value: dt.datetime | None) -> str | None:
    """``.ToUniversalTime().ToString('o')``: seven fractional digits and Z."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"


def _param_datetime(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = dt.datetime.fromisoformat(str(value).strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------- per area

def _hotpatch(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    hp = host.hotpatch
    arc = [{"Name": s.name, "Status": _SERVICE_STATUS.get(s.state, s.state),
            "StartType": _START_TYPE.get(s.start_mode, s.start_mode)}
           for name in ARC_SERVICES if (s := host.services.get(name)) is not None]
    installed = hp.arc_agent_status != "NotInstalled"
    pkg = hp.enrollment_package
    return {
        "Architecture": "amd64",
        "VbsStatus": hp.vbs_status,
        "VbsConfigured": hp.vbs_configured,
        "HotPatchTableSize": hp.hotpatch_table_size,
        "Package": {"Name": pkg.name, "Version": pkg.version} if pkg else None,
        "ArcAgentInstalled": installed,
        "ArcAgentStatus": hp.arc_agent_status if installed else None,
        "ArcServices": arc,
        "FeatureLicensingOverride": 1 if hp.feature_licensing_override else None,
        "DeviceLicensingMutexPresent": hp.device_licensing_mutex,
    }


def _wsus(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    w = host.wsus
    features = [{"Name": n, "Installed": w.role_installed and n != "UpdateServices-DB"} for n in WSUS_FEATURES]
    if not w.role_installed:
        return {"RoleInstalled": False, "Features": features, "AppPoolState": None, "Setup": None, "Api": None}
    svc = host.services.get("WsusService")
    serving = svc is not None and svc.state == "Running" and w.app_pool_state == "Started"
    if serving:
        last = w.last_sync
        api = {
            "Available": True, "Error": None, "MUUrl": w.mu_url, "SyncStatus": w.sync_status,
            "LastSynchronizationTime": iso(last.end_time) if last else None,
            "LastSync": None if last is None else {
                "StartTime": iso(last.start_time), "EndTime": iso(last.end_time), "Result": last.result,
                "Error": last.error, "ErrorText": last.error_text, "StartedManually": last.started_manually,
                "UpdateErrorCount": last.update_error_count, "Id": last.id},
        }
    else:
        api = {"Available": False, "Error": WSUS_UNAVAILABLE, "MUUrl": None, "SyncStatus": None,
               "LastSynchronizationTime": None, "LastSync": None}
    return {
        "RoleInstalled": True, "Features": features,
        "AppPoolState": None if w.app_pool_read_error else w.app_pool_state, "AppPoolError": w.app_pool_read_error,
        "Setup": {"PortNumber": w.port_number, "UsingSSL": w.using_ssl, "ContentDir": w.content_dir},
        "Api": api,
    }


def _services(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    wanted = params.get("Name")
    names = {n.lower() for n in ([wanted] if isinstance(wanted, str) else wanted or [])}
    out = []
    for s in sorted(host.services.values(), key=lambda s: s.name.lower()):
        if names and s.name.lower() not in names:
            continue
        out.append({
            "Name": s.name, "DisplayName": s.display_name, "State": s.state, "StartMode": s.start_mode,
            "DelayedAutoStart": s.delayed_auto_start, "TriggerStart": s.trigger_start, "Status": s.status, "ExitCode": s.exit_code,
            "ServiceSpecificExitCode": s.service_specific_exit_code,
            "ProcessId": s.process_id if s.state == "Running" else 0, "StartName": s.start_name,
            "PathName": s.path_name})
    return {"Services": out}


def _firewall(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    profiles = [{
        "Name": p.name, "Enabled": "True" if p.enabled else "False",
        "DefaultInboundAction": p.default_inbound_action, "DefaultOutboundAction": p.default_outbound_action,
        "AllowInboundRules": p.allow_inbound_rules, "AllowLocalFirewallRules": p.allow_local_firewall_rules,
        "AllowLocalIPsecRules": p.allow_local_ipsec_rules, "AllowUserApps": p.allow_user_apps,
        "AllowUserPorts": p.allow_user_ports, "NotifyOnListen": p.notify_on_listen,
        "LogFileName": p.log_file_name, "LogMaxSizeKilobytes": p.log_max_size_kilobytes,
        "LogAllowed": p.log_allowed, "LogBlocked": p.log_blocked, "LogIgnored": p.log_ignored,
        "DisabledInterfaceAliases": list(p.disabled_interface_aliases),
    } for p in host.firewall_profiles.values()]
    rules = [{
        "Name": r.name, "DisplayName": r.display_name, "Group": r.group or None,
        "Enabled": "True" if r.enabled else "False", "Direction": r.direction, "Action": r.action,
        "Profile": r.profile, "Protocol": r.protocol, "LocalPort": list(r.local_port),
        "RemotePort": list(r.remote_port), "LocalAddress": list(r.local_address),
        "RemoteAddress": list(r.remote_address), "Program": r.program, "Service": r.service,
        "IcmpType": r.icmp_type, "InterfaceType": r.interface_type, "InterfaceAlias": r.interface_alias,
        "Authentication": r.authentication, "Encryption": r.encryption,
        "EdgeTraversal": r.edge_traversal, "PolicyStoreSourceType": r.policy_store_source_type,
    } for r in sorted(host.firewall_rules.values(), key=lambda r: r.name)]
    conns = [{"InterfaceAlias": c.interface_alias, "NetworkCategory": c.network_category}
             for c in host.connection_profiles]
    return {"Profiles": profiles, "Rules": rules, "ConnectionProfiles": conns}


def _updates(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    hotfixes = [{"HotFixID": h.hotfix_id, "Description": h.description,
                 "InstalledOn": h.installed_on.isoformat() if h.installed_on else None,
                 "InstalledBy": h.installed_by} for h in sorted(host.hotfixes, key=lambda h: h.hotfix_id)]
    return {
        "CurrentBuild": host.current_build, "UBR": host.ubr, "DisplayVersion": host.display_version,
        "EditionID": host.edition_id, "ProductName": host.product_name,
        "InstallationType": host.installation_type, "HotFixes": hotfixes,
        "LastBootUpTime": iso(host.last_boot_up_time),
    }


def _reboot(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    r = host.reboot
    return {
        "CbsRebootPending": r.cbs_reboot_pending, "CbsRebootInProgress": r.cbs_reboot_in_progress,
        "CbsPackagesPending": r.cbs_packages_pending, "WuRebootRequired": r.wu_reboot_required,
        "WuaRebootRequired": None,  # as the real probe: ISystemInformation is not usable remotely (docs/probes.md)
        # the value is absent (not empty) when nothing is pending
        "PendingFileRenameOperations": list(r.pending_file_rename_operations) or None,
        "BootId": host.boot_id,
        "BootEvents": _boot_events(host, params),
    }


BOOT_EVENTS = {("EventLog", 6005), ("EventLog", 6006), ("EventLog", 6008), ("User32", 1074),
               ("Microsoft-Windows-Kernel-General", 12), ("Microsoft-Windows-Kernel-General", 13)}


def _boot_events(host: WindowsHost, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    since = _param_datetime(params.get("Since"))
    if since is None:
        return []
    found = sorted((e for e in host.events if e.log_name == "System" and (e.provider_name, e.id) in BOOT_EVENTS
                    and e.time_created >= since), key=lambda e: e.time_created, reverse=True)
    return [{"Id": e.id, "ProviderName": e.provider_name, "TimeCreated": iso(e.time_created)} for e in found]


def _events(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    since = _param_datetime(params.get("Since")) or host.last_boot_up_time
    max_events = int(params.get("MaxEvents") or 1000)

    def query(log: str, provider: str, ids: set[int]) -> list[Any]:
        found = [e for e in host.events if e.log_name == log and e.provider_name == provider and e.id in ids
                 and e.time_created >= since]
        return sorted(found, key=lambda e: e.time_created, reverse=True)[:max_events]  # newest first

    found = (query("System", "Service Control Manager", set(SCM_EVENT_IDS))
             + query("Application", "Windows Server Update Services", {WSUS_EXPLOIT_EVENT_ID}))
    found.sort(key=lambda e: e.time_created, reverse=True)
    events = [{
        "LogName": e.log_name, "ProviderName": e.provider_name, "Id": e.id, "Level": _EVENT_LEVEL.get(e.level, 4),
        "LevelDisplayName": e.level, "TimeCreated": iso(e.time_created),
        "Service": e.properties[0] if e.properties else None, "Message": e.message[:4000] if e.message else None,
    } for e in found]
    return {"Since": iso(since), "Events": events}


def _ports(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    rows = sorted(host.listening_ports, key=lambda p: (p.protocol, p.local_port, p.local_address))
    return {"Listeners": [{"Protocol": p.protocol, "LocalAddress": p.local_address, "LocalPort": p.local_port,
                           "OwningProcess": p.owning_process, "ProcessName": p.process_name} for p in rows]}


def _processes(host: WindowsHost, params: Mapping[str, Any]) -> dict[str, Any]:
    wanted = params.get("ParentName") or ["wsusservice.exe", "w3wp.exe"]
    names = {n.lower() for n in ([wanted] if isinstance(wanted, str) else wanted)}
    parents = {p.process_id for p in host.processes if p.name.lower() in names}
    selected = sorted((p for p in host.processes if p.process_id in parents or p.parent_process_id in parents),
                      key=lambda p: p.process_id)
    return {"ParentNames": list(wanted if not isinstance(wanted, str) else [wanted]),
            "Processes": [{"ProcessId": p.process_id, "ParentProcessId": p.parent_process_id, "Name": p.name,
                           "CommandLine": p.command_line or None} for p in selected]}


_RENDERERS: dict[str, Callable[[WindowsHost, Mapping[str, Any]], dict[str, Any]]] = {
    "hotpatch": _hotpatch, "wsus": _wsus, "services": _services, "firewall": _firewall, "updates": _updates,
    "reboot": _reboot, "events": _events, "ports": _ports, "processes": _processes,
}


def render_document(area: str, host: WindowsHost, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The probe's document as Python data (before JSON formatting)."""
    if area not in _RENDERERS:
        raise KeyError(f"the twin has no renderer for probe area '{area}'")
    return _RENDERERS[area](host, params or {})


def render_probe(area: str, host: WindowsHost, params: Mapping[str, Any] | None = None) -> str:
    """The JSON text ``<area>.ps1`` would print on ``host``."""
    return ps51_json(render_document(area, host, params))


def probe_area_of(script_text: str) -> str | None:
    """The area of a standalone probe script (first line ``# patchgate-probe: <area>``), else None."""
    m = PROBE_LINE.match(script_text.lstrip("\ufeff"))
    return m.group("area") if m else None


def render_capture(script_text: str, host: WindowsHost, params: Mapping[str, Any] | None = None, *,
                   now: dt.datetime | None = None, fail: Mapping[str, str] | None = None) -> str:
    """What a composed capture script prints on ``host``: the capture/1 envelope with one entry per
    ``#region patchgate-probe:<area>`` marker. A standalone probe script gets just that probe's JSON.

    ``fail`` maps areas to an exception message so tests (and twin faults) can make one probe throw.
    """
    params = dict(params or {})
    if not script_text.lstrip("\ufeff").startswith(OP_LINE):
        area = probe_area_of(script_text)
        if area is None:
            raise ValueError("not a patchgate capture or probe script (no '# patchgate-op: capture' or "
                             "'# patchgate-probe: <area>' first line)")
        return render_probe(area, host, params)
    fail = fail or {}
    entries = []
    for area in capture_areas(script_text):
        try:
            if area in fail:
                raise RuntimeError(fail[area])
            entries.append({"area": area, "ok": True, "output": render_probe(area, host, params), "error": None})
        except Exception as exc:  # noqa: BLE001 - like the script's try/catch: any throw is reported per area
            kind = "System.Management.Automation.RuntimeException" if isinstance(exc, RuntimeError) \
                else f"System.{type(exc).__name__}"
            entries.append({"area": area, "ok": False, "output": None, "error": f"{kind}: {exc}"})
    envelope = {"patchgate": ENVELOPE_TAG, "computerName": host.computer_name.upper(),
                "capturedAt": iso(now or utcnow()), "probes": entries}
    return ps51_json(envelope)
