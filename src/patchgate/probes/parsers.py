"""Turn each probe's JSON into its posture dataclass: lenient on form, strict on meaning.

The probes wrap arrays and format dates so Windows PowerShell 5.1's ConvertTo-Json prints clean JSON, but a
script edited in the field (or a probe run by hand without the wrapping) can still hit 5.1's quirks. The parsers
accept all of them:

* a one-element array collapsed to the bare object (pipeline unrolling), ``null`` for an empty pipeline;
* an array wrapped as ``{"value": [...], "Count": n}`` (5.1's extended-type serialisation of arrays);
* ``"\\/Date(1698000000000)\\/"`` dates and Get-Date's ``{"value": "\\/Date(..)\\/", "DisplayHint": 2, ...}``;
* enum numbers instead of names (5.1 has no ``-EnumsAsStrings``);
* property names in any letter case (PowerShell's are case-insensitive).

What they refuse, with a ProbeError naming the area and the field: a missing required field, a value of the
wrong kind (a string where a number belongs, ``"System.Collections.Hashtable"`` from a too-small ``-Depth``),
an enum number nobody defined.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from patchgate.errors import ProbeError
from patchgate.model.posture import (
    ArcServiceInfo,
    BootEvent,
    ConnectionProfileInfo,
    EventInfo,
    EventsPosture,
    FirewallPosture,
    FirewallProfileInfo,
    FirewallRuleInfo,
    HotFixInfo,
    HotpatchPosture,
    ListenerInfo,
    PortsPosture,
    ProcessesPosture,
    ProcessInfo,
    RebootPosture,
    ServiceInfo,
    ServicesPosture,
    SyncInfo,
    UpdatesPosture,
    WsusPosture,
)

UTC = dt.UTC

# Enum numbers as Windows PowerShell 5.1 prints them without string conversion. Values from the CDXML/.NET enum
# definitions; the NetSecurity ones (Action, Enabled, PolicyStoreSourceType) are [U] on WS2025.
DIRECTION = {1: "Inbound", 2: "Outbound"}
ACTION = {0: "NotConfigured", 2: "Allow", 4: "Block"}
RULE_ENABLED = {1: "True", 2: "False"}
GPO_BOOLEAN = {0: "False", 1: "True", 2: "NotConfigured"}
EDGE_TRAVERSAL = {0: "Block", 1: "Allow", 2: "DeferToUser", 3: "DeferToApp"}
POLICY_STORE_SOURCE = {0: "None", 1: "Local", 2: "GroupPolicy", 3: "Dynamic", 4: "Generated", 5: "Hardcoded",
                       6: "MDM"}  # MS-FASP also defines newer (HOST_*) stores [U names]: recorded, never fatal
NETWORK_CATEGORY = {0: "Public", 1: "Private", 2: "DomainAuthenticated"}
PROFILE_FLAGS = {1: "Domain", 2: "Private", 4: "Public"}
SERVICE_STATUS = {1: "Stopped", 2: "StartPending", 3: "StopPending", 4: "Running", 5: "ContinuePending",
                  6: "PausePending", 7: "Paused"}
SERVICE_START_TYPE = {0: "Boot", 1: "System", 2: "Automatic", 3: "Manual", 4: "Disabled"}
SYNC_RESULT = {0: "NeverRun", 1: "Succeeded", 2: "Failed", 3: "Canceled", 4: "Unknown"}
SYNC_STATUS = {0: "NotProcessing", 1: "Running", 2: "Stopping"}  # [U] numbers
APP_POOL_STATE = {0: "Starting", 1: "Started", 2: "Stopping", 3: "Stopped", 4: "Unknown"}
EVENT_LEVEL = {0: "Information", 1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 5: "Verbose"}
FIREWALL_ACTION_NAMES = {"Allow", "Block", "NotConfigured"}

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_ABSENT = object()


def _unwrap(value: Any) -> Any:
    """Undo 5.1's PSObject wrappers: {"value": [...], "Count": n} and Get-Date's {"value": ..., "DisplayHint": n}."""
    if isinstance(value, dict) and "value" in value:
        keys = set(value)
        if keys <= {"value", "Count"} and isinstance(value["value"], list):
            return value["value"]
        if "DisplayHint" in keys or keys == {"value"}:
            return value["value"]
    return value


class Node:
    """A JSON object with the probe area and a path, so every complaint names exactly where it is."""

    def __init__(self, area: str, path: str, data: Mapping[str, Any]) -> None:
        self.area = area
        self.path = path
        self._data = data
        self._lower = {k.lower(): k for k in data}

    # -- plumbing
    def fail(self, key: str, expected: str, value: Any = _ABSENT) -> ProbeError:
        where = f"{self.path}.{key}" if self.path else key
        if value is _ABSENT:
            detail = f" is missing (expected {expected})"
        else:
            shown = json.dumps(value)[:80] if not isinstance(value, str) else repr(value[:80])
            detail = f": expected {expected}, got {shown}"
        return ProbeError(f"probe '{self.area}': field '{where}'{detail}", step=f"probe:{self.area}")

    def raw(self, key: str, required: bool = False) -> Any:
        real = self._lower.get(key.lower())
        if real is None:
            if required:
                raise self.fail(key, "a value")
            return None
        return _unwrap(self._data[real])

    def _need(self, key: str, value: Any, required: bool, expected: str) -> bool:
        if value is None:
            if required:
                raise self.fail(key, expected, None)
            return False
        return True

    # -- scalars
    def str(self, key: str, required: bool = False) -> str | None:
        v = self.raw(key, required)
        if not self._need(key, v, required, "a string"):
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        raise self.fail(key, "a string", v)

    def int(self, key: str, required: bool = False) -> int | None:
        v = self.raw(key, required)
        if not self._need(key, v, required, "an integer"):
            return None
        if isinstance(v, bool):
            raise self.fail(key, "an integer", v)
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
            return int(v)
        raise self.fail(key, "an integer", v)

    def bool(self, key: str, required: bool = False) -> bool | None:
        v = self.raw(key, required)
        if not self._need(key, v, required, "true or false"):
            return None
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise self.fail(key, "true or false", v)

    def gpo_bool(self, key: str) -> bool | None:
        """GpoBoolean: True / False / NotConfigured (None)."""
        name = self.enum(key, GPO_BOOLEAN, allowed={"True", "False", "NotConfigured"})
        return None if name in (None, "NotConfigured") else name == "True"

    def enum(self, key: str, table: Mapping[int, str], required: bool = False,
             allowed: set[str] | None = None, record_unknown: bool = False) -> str | None:
        """``record_unknown``: for fields only recorded as evidence (never judged), a value Windows added after
        this table was written is kept as ``Unknown(<n>)`` or its own name instead of failing the whole area."""
        v = self.raw(key, required)
        if not self._need(key, v, required, "an enum name"):
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            if v not in table:
                if record_unknown:
                    return f"Unknown({v})"
                raise self.fail(key, f"one of {sorted(table)}", v)
            return table[v]
        if isinstance(v, str):
            if v.strip().lstrip("-").isdigit() and int(v) in table:
                return table[int(v)]
            names = allowed if allowed is not None else set(table.values())
            if v == "" and not required:
                return None
            match = next((n for n in names if n.lower() == v.lower()), None)
            if match is None:
                if record_unknown and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", v):
                    return v
                raise self.fail(key, f"one of {sorted(names)}", v)
            return match
        raise self.fail(key, "an enum name", v)

    def flags(self, key: str, table: Mapping[int, str], zero: str) -> str | None:
        """A [Flags] enum: names such as "Domain, Private" pass through; numbers are decoded."""
        v = self.raw(key)
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            if v == 0:
                return zero
            names = [n for bit, n in sorted(table.items()) if v & bit]
            if sum(bit for bit in table if v & bit) != v:
                raise self.fail(key, f"flags of {sorted(table)}", v)
            return ", ".join(names)
        if isinstance(v, str) and v:
            parts = [p.strip() for p in v.split(",")]
            known = {n.lower(): n for n in [zero, *table.values()]}
            if any(p.lower() not in known for p in parts):
                raise self.fail(key, f"names from {[zero, *table.values()]}", v)
            return ", ".join(known[p.lower()] for p in parts)
        raise self.fail(key, "flag names", v)

    def datetime(self, key: str, required: bool = False) -> dt.datetime | None:
        v = self.raw(key, required)
        if not self._need(key, v, required, "an ISO 8601 date"):
            return None
        parsed = parse_datetime(v)
        if parsed is None:
            raise self.fail(key, "an ISO 8601 or \\/Date(ms)\\/ date", v)
        return parsed

    def date(self, key: str) -> dt.date | None:
        v = self.raw(key)
        if v is None or v == "":
            return None
        if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            return dt.date.fromisoformat(v)
        parsed = parse_datetime(v)
        if parsed is None:
            raise self.fail(key, "a date", v)
        return parsed.date()

    # -- structure
    def obj(self, key: str, required: bool = False) -> Node | None:
        v = self.raw(key, required)
        if not self._need(key, v, required, "an object"):
            return None
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], dict):
            v = v[0]
        if not isinstance(v, dict):
            raise self.fail(key, "an object", v)
        return Node(self.area, f"{self.path}.{key}" if self.path else key, v)

    def list(self, key: str, required: bool = False) -> list[Any]:
        v = self.raw(key, required)
        if v is None:
            if required and self._lower.get(key.lower()) is None:
                raise self.fail(key, "an array")
            return []
        return v if isinstance(v, list) else [v]

    def objs(self, key: str, required: bool = False) -> list[Node]:
        out = []
        for i, item in enumerate(self.list(key, required)):
            item = _unwrap(item)
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{i}]", "an object", item)
            out.append(Node(self.area, f"{self.path}.{key}[{i}]" if self.path else f"{key}[{i}]", item))
        return out

    def strs(self, key: str) -> tuple[str, ...]:
        """An array of strings; 5.1 collapses one element to a bare string, and a joined "a,b" is split."""
        v = self.raw(key)
        if v is None:
            return ()
        items = v if isinstance(v, list) else [v]
        out: list[str] = []
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                raise self.fail(key, "strings", item)
            if isinstance(v, list):
                out.append(item)
            else:  # a bare string: a collapsed one-element array or a "a,b" join
                out.extend(p.strip() for p in item.split(",") if p.strip())
        return tuple(out)

    def str_list(self, key: str) -> tuple[str, ...] | None:
        """An array of strings kept verbatim (empty strings included); None when the value is absent."""
        v = self.raw(key)
        if v is None:
            return None
        items = v if isinstance(v, list) else [v]
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{i}]", "a string", item)
        return tuple(items)


def parse_datetime(value: Any) -> dt.datetime | None:
    """ISO 8601 (any fraction length, Z or offset; naive means UTC) or 5.1's \\/Date(ms)\\/; None if neither."""
    value = _unwrap(value)
    if isinstance(value, str):
        text = value.strip()
        m = _MS_DATE.match(text)
        if m:
            return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=int(m.group(1)))
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def load_document(area: str, text: str) -> Node:
    """Parse one probe's output text into a root Node; nonsense raises ProbeError naming the area."""
    if text is None or not str(text).strip():
        raise ProbeError(f"probe '{area}' printed nothing", step=f"probe:{area}")
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise ProbeError(f"probe '{area}' printed invalid JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}): {text[:80]!r}", step=f"probe:{area}") from None
    data = _unwrap(data)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise ProbeError(f"probe '{area}' printed {type(data).__name__}, expected one JSON object",
                         step=f"probe:{area}")
    return Node(area, "", data)


# ----------------------------------------------------------------------------------------------- per area

def parse_hotpatch(root: Node) -> HotpatchPosture:
    pkg = root.obj("Package")
    services = {}
    for s in root.objs("ArcServices"):
        name = s.str("Name", required=True)
        assert name is not None
        services[name] = ArcServiceInfo(name=name, status=s.enum("Status", SERVICE_STATUS),
                                        start_type=s.enum("StartType", SERVICE_START_TYPE))
    vbs = root.int("VbsStatus")
    if vbs is not None and vbs not in (0, 1, 2):
        raise root.fail("VbsStatus", "0, 1 or 2", vbs)
    table = root.int("HotPatchTableSize")
    if table is not None and table < 0:
        raise root.fail("HotPatchTableSize", "a size >= 0", table)
    return HotpatchPosture(
        vbs_status=vbs, vbs_configured=root.int("VbsConfigured"), hotpatch_table_size=table,
        architecture=root.str("Architecture") or "amd64",
        package_name=pkg.str("Name") if pkg else None, package_version=pkg.str("Version") if pkg else None,
        arc_agent_installed=bool(root.bool("ArcAgentInstalled")), arc_agent_status=root.str("ArcAgentStatus") or None,
        arc_services=services, feature_licensing_override=root.int("FeatureLicensingOverride"),
        device_licensing_mutex=bool(root.bool("DeviceLicensingMutexPresent")))


def parse_wsus(root: Node) -> WsusPosture:
    features: dict[str, bool] = {}
    for f in root.objs("Features"):
        name = f.str("Name", required=True)
        assert name is not None
        features[name] = bool(f.bool("Installed", required=True))
    role = root.bool("RoleInstalled", required=True)
    setup = root.obj("Setup")
    api = root.obj("Api")
    last = api.obj("LastSync") if api else None
    sync = None
    if last is not None:
        err = last.raw("Error")
        sync = SyncInfo(
            start_time=last.datetime("StartTime"), end_time=last.datetime("EndTime"),
            result=last.enum("Result", SYNC_RESULT),
            error=("NotApplicable" if err == 0 else str(err)) if isinstance(err, int) else last.str("Error"),
            error_text=last.str("ErrorText"), started_manually=last.bool("StartedManually"),
            update_error_count=last.int("UpdateErrorCount"), id=last.str("Id"))
    mu = api.str("MUUrl") if api else None
    return WsusPosture(
        role_installed=bool(role), features=features,
        api_available=bool(api.bool("Available")) if api else False,
        api_error=api.str("Error") if api else None,
        app_pool_state=root.enum("AppPoolState", APP_POOL_STATE),
        app_pool_error=root.str("AppPoolError") or None,
        port_number=setup.int("PortNumber") if setup else None,
        using_ssl=setup.bool("UsingSSL") if setup else None,
        content_dir=setup.str("ContentDir") if setup else None,
        mu_url=mu.rstrip("/") if mu else None,
        sync_status=api.enum("SyncStatus", SYNC_STATUS) if api else None,
        last_synchronization_time=api.datetime("LastSynchronizationTime") if api else None,
        last_sync=sync)


def parse_services(root: Node) -> ServicesPosture:
    out: dict[str, ServiceInfo] = {}
    for s in root.objs("Services", required=True):
        name = s.str("Name", required=True)
        assert name is not None
        out[name] = ServiceInfo(
            name=name, display_name=s.str("DisplayName"), state=s.str("State"), start_mode=s.str("StartMode"),
            delayed_auto_start=s.bool("DelayedAutoStart"), trigger_start=s.bool("TriggerStart"), status=s.str("Status"), exit_code=s.int("ExitCode"),
            service_specific_exit_code=s.int("ServiceSpecificExitCode"), process_id=s.int("ProcessId"),
            start_name=s.str("StartName"), path_name=s.str("PathName"))
    return ServicesPosture(services=out)


def parse_firewall(root: Node) -> FirewallPosture:
    profiles: dict[str, FirewallProfileInfo] = {}
    for p in root.objs("Profiles", required=True):
        name = p.enum("Name", {1: "Domain", 2: "Private", 4: "Public"}, required=True)
        assert name is not None
        profiles[name] = FirewallProfileInfo(
            name=name, enabled=p.gpo_bool("Enabled"),
            default_inbound_action=p.enum("DefaultInboundAction", ACTION, allowed=FIREWALL_ACTION_NAMES),
            default_outbound_action=p.enum("DefaultOutboundAction", ACTION, allowed=FIREWALL_ACTION_NAMES),
            allow_inbound_rules=p.gpo_bool("AllowInboundRules"),
            allow_local_firewall_rules=p.gpo_bool("AllowLocalFirewallRules"),
            allow_local_ipsec_rules=p.gpo_bool("AllowLocalIPsecRules"),
            allow_user_apps=p.gpo_bool("AllowUserApps"), allow_user_ports=p.gpo_bool("AllowUserPorts"),
            notify_on_listen=p.gpo_bool("NotifyOnListen"), log_file_name=p.str("LogFileName"),
            log_max_size_kilobytes=p.int("LogMaxSizeKilobytes"), log_allowed=p.gpo_bool("LogAllowed"),
            log_blocked=p.gpo_bool("LogBlocked"), log_ignored=p.gpo_bool("LogIgnored"),
            disabled_interface_aliases=p.strs("DisabledInterfaceAliases"))
    rules: dict[str, FirewallRuleInfo] = {}
    for r in root.objs("Rules", required=True):
        name = r.str("Name", required=True)
        assert name is not None
        enabled = r.enum("Enabled", RULE_ENABLED, allowed={"True", "False"}, required=True)
        rules[name] = FirewallRuleInfo(
            name=name, display_name=r.str("DisplayName"), group=r.str("Group") or None,
            enabled=enabled == "True", direction=r.enum("Direction", DIRECTION, required=True),
            action=r.enum("Action", ACTION, required=True, allowed=FIREWALL_ACTION_NAMES),
            profile=r.flags("Profile", PROFILE_FLAGS, "Any"), protocol=r.str("Protocol"),
            local_port=r.strs("LocalPort"), remote_port=r.strs("RemotePort"),
            local_address=r.strs("LocalAddress"), remote_address=r.strs("RemoteAddress"),
            program=r.str("Program"), service=r.str("Service"),
            icmp_type=r.strs("IcmpType"), interface_type=r.str("InterfaceType"),
            interface_alias=r.strs("InterfaceAlias"), authentication=r.str("Authentication"),
            encryption=r.str("Encryption"),
            edge_traversal=r.enum("EdgeTraversal", EDGE_TRAVERSAL),
            policy_store_source_type=r.enum("PolicyStoreSourceType", POLICY_STORE_SOURCE, record_unknown=True))
    conns = tuple(ConnectionProfileInfo(interface_alias=c.str("InterfaceAlias", required=True) or "",
                                        network_category=c.enum("NetworkCategory", NETWORK_CATEGORY))
                  for c in root.objs("ConnectionProfiles"))
    return FirewallPosture(profiles=profiles, rules=rules, connection_profiles=conns)


def parse_updates(root: Node) -> UpdatesPosture:
    hotfixes: dict[str, HotFixInfo] = {}
    for h in root.objs("HotFixes"):
        kb = (h.str("HotFixID", required=True) or "").strip().upper()
        if not re.fullmatch(r"KB\d+", kb):
            raise h.fail("HotFixID", "a KB id such as KB5070893", kb)
        hotfixes[kb] = HotFixInfo(hotfix_id=kb, description=h.str("Description"), installed_on=h.date("InstalledOn"),
                                  installed_by=h.str("InstalledBy"))
    build = root.str("CurrentBuild", required=True)
    if build is not None and not build.isdigit():
        raise root.fail("CurrentBuild", "digits such as 26100", build)
    return UpdatesPosture(
        current_build=build, ubr=root.int("UBR", required=True), display_version=root.str("DisplayVersion"),
        edition_id=root.str("EditionID"), product_name=root.str("ProductName"),
        installation_type=root.str("InstallationType"), hotfixes=hotfixes,
        last_boot_up_time=root.datetime("LastBootUpTime", required=True))


def parse_reboot(root: Node) -> RebootPosture:
    return RebootPosture(
        cbs_reboot_pending=bool(root.bool("CbsRebootPending", required=True)),
        cbs_reboot_in_progress=bool(root.bool("CbsRebootInProgress")),
        cbs_packages_pending=bool(root.bool("CbsPackagesPending")),
        wu_reboot_required=bool(root.bool("WuRebootRequired", required=True)),
        wua_reboot_required=root.bool("WuaRebootRequired"),
        pending_file_rename_operations=root.str_list("PendingFileRenameOperations"),
        boot_id=root.int("BootId"),
        boot_events=tuple(BootEvent(id=int(e.int("Id", required=True) or 0),
                                    provider_name=e.str("ProviderName", required=True) or "",
                                    time_created=e.datetime("TimeCreated")) for e in root.objs("BootEvents")))


def parse_events(root: Node) -> EventsPosture:
    events = []
    for e in root.objs("Events"):
        level_raw = e.raw("Level")
        level = e.enum("Level", EVENT_LEVEL) if isinstance(level_raw, int) else None
        level = level or e.str("LevelDisplayName") or (e.str("Level") if isinstance(level_raw, str) else None)
        events.append(EventInfo(
            log_name=e.str("LogName", required=True) or "", provider_name=e.str("ProviderName", required=True) or "",
            id=e.int("Id", required=True) or 0, level=level, time_created=e.datetime("TimeCreated", required=True),
            service=e.str("Service"), message=e.str("Message")))
    return EventsPosture(since=root.datetime("Since"), events=tuple(events))


def parse_ports(root: Node) -> PortsPosture:
    out = []
    for p in root.objs("Listeners"):
        proto = (p.str("Protocol", required=True) or "").upper()
        if proto not in ("TCP", "UDP"):
            raise p.fail("Protocol", "TCP or UDP", proto)
        port = p.int("LocalPort", required=True)
        if port is None or not 0 <= port <= 65535:
            raise p.fail("LocalPort", "a port 0-65535", port)
        out.append(ListenerInfo(protocol=proto, local_address=p.str("LocalAddress", required=True) or "",
                                local_port=port, owning_process=p.int("OwningProcess"),
                                process_name=p.str("ProcessName")))
    return PortsPosture(listeners=tuple(out))


def parse_processes(root: Node) -> ProcessesPosture:
    return ProcessesPosture(processes=tuple(
        ProcessInfo(process_id=p.int("ProcessId", required=True) or 0, name=p.str("Name", required=True) or "",
                    parent_process_id=p.int("ParentProcessId"), command_line=p.str("CommandLine"))
        for p in root.objs("Processes")))


PARSERS: dict[str, Callable[[Node], Any]] = {
    "hotpatch": parse_hotpatch, "wsus": parse_wsus, "services": parse_services, "firewall": parse_firewall,
    "updates": parse_updates, "reboot": parse_reboot, "events": parse_events, "ports": parse_ports,
    "processes": parse_processes,
}


def parse_probe(area: str, text: str) -> Any:
    """Parse one probe's printed JSON into the posture of ``area`` (ProbeError on nonsense)."""
    if area not in PARSERS:
        raise ProbeError(f"no parser for probe area '{area}'", step=f"probe:{area}")
    return PARSERS[area](load_document(area, text))
