"""The parsers on output shaped exactly as Windows PowerShell 5.1 prints it, quirks included (tests/data/ps51)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from patchgate.errors import ProbeError
from patchgate.probes.batch import parse_capture
from patchgate.probes.parsers import parse_probe
from patchgate.remoting.base import ScriptResult

DATA = Path(__file__).resolve().parents[1] / "data" / "ps51"
UTC = dt.UTC


def load(area: str, variant: str = "") -> object:
    name = f"{area}.{variant}.json" if variant else f"{area}.json"
    return parse_probe(area, (DATA / name).read_text(encoding="utf-8"))


def test_hotpatch_clean_and_quirks() -> None:
    hp = load("hotpatch")
    assert hp.enrolled and hp.arc_connected and hp.device_licensing_mutex and hp.vbs_configured == 1
    assert set(hp.arc_services) == {"ExtensionService", "GCArcService", "himds"}
    q = load("hotpatch", "quirks")
    assert q.enrolled and not q.arc_connected and q.feature_licensing_override == 1
    assert q.arc_services["himds"].status == "Stopped" and q.arc_services["himds"].start_type == "Automatic"


def test_hotpatch_rejects_a_vbs_status_that_does_not_exist() -> None:
    with pytest.raises(ProbeError, match=r"probe 'hotpatch': field 'VbsStatus': expected 0, 1 or 2, got 9"):
        load("hotpatch", "bad-vbs")


def test_services_clean_pretty_and_depth_overflow() -> None:
    s = load("services")
    wid = s.get("MSSQL$MICROSOFT##WID")
    assert wid is not None and wid.running and wid.path_name.endswith('-s"MICROSOFT##WID"')
    wsus = s.services["WsusService"]
    assert wsus.exit_code == 1067 and wsus.delayed_auto_start and not wsus.running and wsus.automatic
    pretty = load("services", "pretty")  # collapsed single object, 5.1's wide indentation
    assert list(pretty.services) == ["WinRM"] and pretty.services["WinRM"].process_id == 1184
    with pytest.raises(ProbeError, match=r"field 'Services\[0\]': expected an object, got '@\{Name=WinRM"):
        load("services", "depth")


def test_firewall_clean() -> None:
    fw = load("firewall")
    assert fw.profiles["Public"].notify_on_listen is True and fw.profiles["Domain"].allow_user_apps is None
    assert fw.profiles["Domain"].disabled_interface_aliases == ("NotConfigured",)
    block = fw.rules["{3F2A8C1E-5D4B-4B8E-9C2A-0E6F7A1B2C3D}"]
    assert block.action == "Block" and block.local_port == ("8530", "8531") and block.group is None
    assert block.policy_store_source_type == "GroupPolicy" and not block.inbound_allow_from_any


def test_firewall_enum_numbers_and_collapsed_arrays() -> None:
    fw = load("firewall", "quirks")
    d = fw.profiles["Domain"]
    assert d.enabled is True and d.default_inbound_action == "Block" and d.default_outbound_action == "Allow"
    assert d.allow_local_firewall_rules is None and d.notify_on_listen is False and d.log_ignored is None
    assert d.disabled_interface_aliases == ("NotConfigured",)
    rdp = fw.rules["RemoteDesktop-UserMode-In-TCP"]
    assert rdp.enabled is False and rdp.direction == "Inbound" and rdp.action == "Allow"
    assert rdp.profile == "Domain, Private" and rdp.edge_traversal == "Block" and rdp.policy_store_source_type == "Local"
    assert rdp.local_port == ("3389",) and rdp.remote_address == ("LocalSubnet",)
    assert fw.connection_profiles[0].network_category == "DomainAuthenticated"


def test_firewall_rejects_unknown_enum_number() -> None:
    with pytest.raises(ProbeError, match=r"field 'Rules\[0\]\.Direction': expected one of \[1, 2\], got 7"):
        load("firewall", "bad-enum")


def test_updates_clean_and_quirks() -> None:
    u = load("updates")
    assert u.build == "26100.6905" and u.has_kb("KB5070881") and u.kb_ids == {"KB5066835", "KB5070881"}
    assert u.last_boot_up_time == dt.datetime(2025, 10, 23, 19, 4, 11, 500000, tzinfo=UTC)
    q = load("updates", "quirks")
    assert q.ubr == 6899 and q.installation_type == "Server Core"
    assert q.hotfixes["KB5066835"].installed_on == dt.date(2025, 10, 15)  # lower-case id, DisplayHint wrapper
    assert q.hotfixes["KB5043080"].installed_on is None
    assert q.last_boot_up_time == u.last_boot_up_time  # \/Date(ms)\/


def test_updates_rejects_nonsense_dates() -> None:
    with pytest.raises(ProbeError, match=r"probe 'updates': field 'LastBootUpTime'"):
        load("updates", "bad-date")


def test_reboot_clean_and_collapsed_value() -> None:
    r = load("reboot")
    assert r.pending and r.pending_file_rename and len(r.pending_file_rename_operations) == 2
    q = load("reboot", "quirks")
    assert not q.pending and q.wua_reboot_required is None
    assert q.pending_file_rename_operations == ("\\??\\C:\\ProgramData\\AV\\update.dll",)


def test_wsus_clean_quirks_and_no_role() -> None:
    w = load("wsus")
    assert w.api_available and w.last_sync.succeeded and w.last_sync.started_manually
    assert w.mu_url == "https://sws.update.microsoft.com" and w.using_ssl is False and w.content_dir == "D:\\WSUS"
    q = load("wsus", "quirks")
    assert q.app_pool_state == "Started" and q.sync_status == "Running" and q.using_ssl is True
    assert q.last_sync.result == "Failed" and q.last_sync.end_time == dt.datetime(2025, 10, 24, 10, 7, tzinfo=UTC)
    assert q.features == {"UpdateServices": True} and q.port_number == 8531
    n = load("wsus", "no-role")
    assert not n.role_installed and not n.api_available and n.last_sync is None and n.app_pool_state is None


def test_events_clean_and_quirks() -> None:
    e = load("events")
    assert [x.id for x in e.events] == [7053, 7031] and e.service_failures[0].service == "WSUS Service"
    assert "ObjectDataProvider'" in e.with_ids([7053])[0].message
    q = load("events", "quirks")
    assert q.since == dt.datetime(2025, 10, 24, 8, tzinfo=UTC)
    assert len(q.events) == 1 and q.events[0].level == "Information" and q.service_failures == ()
    assert q.for_service("background intelligent transfer service")[0].id == 7040


def test_ports_and_processes() -> None:
    p = load("ports")
    assert p.listening(8530) and not p.listening(8531) and p.listening(123, "UDP")
    assert p.keyed()[("TCP", 5985)].local_addresses == ("0.0.0.0", "::")
    q = load("ports", "quirks")
    assert q.keyed()[("TCP", 3389)].process_names == ("?",)
    pr = load("processes")
    assert [x.name for x in pr.suspicious_wsus_children] == ["powershell.exe"]
    assert load("processes", "quirks").processes == ()


def test_capture_envelope_sample() -> None:
    cap = parse_capture(ScriptResult("capture", [(DATA / "capture.json").read_text()]), vm="lab-wsus-01")
    assert cap.posture.reboot is not None and not cap.posture.reboot.pending
    assert "Access denied" in cap.errors["firewall"] and cap.posture.firewall is None
    assert cap.posture.captured_at.microsecond == 123456


@pytest.mark.parametrize("text,match", [
    ("", "printed nothing"),
    ("<html>503</html>", "invalid JSON"),
    ("[1,2]", "expected one JSON object"),
    ('{"Services":"System.Object[]"}', r"field 'Services\[0\]': expected an object"),
    ('{"Services":[{"DisplayName":"x"}]}', r"field 'Services\[0\]\.Name' is missing"),
    ('{"Services":[{"Name":"x","ProcessId":"abc"}]}', r"field 'Services\[0\]\.ProcessId': expected an integer"),
    ('{"Services":[{"Name":"x","DelayedAutoStart":"maybe"}]}', "expected true or false"),
])
def test_nonsense_names_area_and_field(text: str, match: str) -> None:
    with pytest.raises(ProbeError, match=match) as exc:
        parse_probe("services", text)
    assert "probe 'services'" in str(exc.value) and exc.value.step == "probe:services"


def test_firewall_records_policy_stores_newer_than_its_table() -> None:
    """MS-FASP keeps adding policy stores (MDM = 6, host stores): an informational field never fails the area."""
    fw = load("firewall", "new-store")
    assert fw.rules["MDM-Pushed-In-TCP"].policy_store_source_type == "MDM"
    assert fw.rules["Host-Store-In-TCP"].policy_store_source_type == "Unknown(9)"
    assert fw.rules["Host-Store-Named-In-TCP"].policy_store_source_type == "HostFirewall"
    assert fw.rules["WINRM-HTTP-In-TCP"].policy_store_source_type == "Local"


def test_wsus_app_pool_read_failure_is_kept_as_an_error_not_a_state() -> None:
    w = load("wsus", "pool-error")
    assert w.app_pool_state is None and "WebAdministration" in (w.app_pool_error or "")
    assert load("wsus").app_pool_error is None


def test_azure_edition_is_recognised_by_its_edition_prefix() -> None:
    assert load("updates", "azure-core").azure_edition  # Azure Edition Core may read ServerTurbineCor [U]
    assert not load("updates").azure_edition  # ServerDatacenter


def test_firewall_rules_carry_interface_security_and_icmp_conditions() -> None:
    rule = load("firewall", "conditions").rules["WINRM-HTTP-In-TCP"]
    assert rule.interface_type == "RemoteAccess" and rule.interface_alias == ("Ethernet 2",)
    assert rule.authentication == "Required" and rule.encryption == "Dynamic" and rule.icmp_type == ("8",)
    from patchgate.model.posture import PROFILE_DIFF_FIELDS, RULE_DIFF_FIELDS

    assert {"interface_type", "interface_alias", "authentication", "encryption", "icmp_type"} <= set(RULE_DIFF_FIELDS)
    assert {"disabled_interface_aliases", "allow_local_ipsec_rules", "allow_user_apps", "allow_user_ports",
            "notify_on_listen", "log_ignored"} <= set(PROFILE_DIFF_FIELDS)
