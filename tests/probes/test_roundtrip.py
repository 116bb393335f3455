"""Model -> twin render -> real parsers -> posture: the twin prints what the scripts print, the parsers agree."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from patchgate.errors import ProbeError
from patchgate.model.posture import AREAS
from patchgate.probes import probe_text
from patchgate.probes.batch import compose_capture, parse_capture
from patchgate.probes.parsers import parse_probe
from patchgate.remoting.base import ScriptResult
from patchgate_twin.render import render_capture, render_probe
from probes.hosts import BOOT, plain_host, stopped_wsus_host, wsus_hotpatch_host

UTC = dt.UTC
NOW = dt.datetime(2025, 10, 25, 9, 30, tzinfo=UTC)


def capture(host, areas=AREAS, since=None, **kw):
    script = compose_capture(areas, since)
    text = render_capture(script.body, host, script.parameters, now=NOW, **kw)
    return parse_capture(ScriptResult(name=script.name, output=[text]), vm="vm1")


def test_full_capture_of_an_enrolled_wsus_server() -> None:
    host = wsus_hotpatch_host()
    cap = capture(host, since=BOOT)
    p = cap.posture
    assert cap.ok and p.vm == "vm1" and p.computer_name == "LAB-WSUS-01" and p.captured_at == NOW
    assert set(cap.raw) == set(AREAS)

    assert p.hotpatch.enrolled and p.hotpatch.arc_connected
    assert p.hotpatch.package_version == "10.0.26100.1742" and p.hotpatch.hotpatch_table_size == 4096
    assert p.hotpatch.feature_licensing_override == 1 and not p.hotpatch.device_licensing_mutex
    assert p.hotpatch.arc_services["himds"].status == "Running"
    assert p.hotpatch.arc_services["ExtensionService"].start_type == "Manual"
    assert p.hotpatch.arc_services["hpatchmon"].status == "Stopped"

    assert p.updates.build == "26100.6905" and p.updates.has_kb("5070893") and not p.updates.has_kb("KB5070881")
    assert p.updates.hotfixes["KB5066835"].installed_on == dt.date(2025, 10, 15)
    assert p.updates.hotfixes["KB5043080"].installed_on is None
    assert p.updates.last_boot_up_time == BOOT  # microseconds survive the 7-digit 'o' format

    s = p.services.get("wsusservice")
    assert s is not None and s.running and s.process_id == 3100 and s.start_name == "NT AUTHORITY\\NetworkService"
    assert p.services.services["BITS"].process_id == 0 and p.services.services["UsoSvc"].delayed_auto_start

    w = p.wsus
    assert w.role_installed and w.api_available and w.app_pool_state == "Started" and w.port_number == 8530
    assert w.features["UpdateServices"] and not w.features["UpdateServices-DB"]
    assert w.last_sync.result == "Failed" and w.last_sync.update_error_count == 2
    assert w.last_sync.end_time == host.wsus.last_sync.end_time and w.mu_url == "https://sws.update.microsoft.com"

    fw = p.firewall
    assert set(fw.profiles) == {"Domain", "Private", "Public"}
    assert fw.profiles["Public"].log_blocked is True and fw.profiles["Public"].allow_user_apps is None
    assert fw.profiles["Public"].disabled_interface_aliases == ("Ethernet 2",)
    winrm = fw.rules["WINRM-HTTP-In-TCP"]
    assert winrm.local_port == ("5985",) and winrm.profile == "Domain, Private" and winrm.inbound_allow_from_any
    assert fw.rules["RemoteDesktop-UserMode-In-TCP"].enabled is False
    assert fw.rules["CoreNet-ICMP4-DUFRAG-In"].remote_address == ("LocalSubnet", "10.0.0.0/8")
    assert fw.rules["CoreNet-ICMP4-DUFRAG-In"].local_port == ()
    assert fw.rules["Block-Out-Telnet"].display_name == "Block telnet <out> & 'friends'"
    assert fw.rules["Block-Out-Telnet"].policy_store_source_type == "GroupPolicy"
    assert [c.network_category for c in fw.connection_profiles] == ["DomainAuthenticated", "Private"]

    assert p.reboot.pending is False and p.reboot.pending_file_rename_operations == ("\\??\\C:\\Temp\\a.tmp", "")

    ids = [e.id for e in p.events.events]
    assert ids == [7053, 7031]  # 7036 is not probed, the 7045 predates Since; newest first
    assert p.events.service_failures[0].service == "WSUS Service" and p.events.since == BOOT
    assert "ObjectDataProvider" in p.events.with_ids([7053])[0].message

    keyed = p.ports.keyed()
    assert keyed[("TCP", 8530)].local_addresses == ("0.0.0.0", "::") and ("UDP", 123) in keyed

    bad = p.processes.suspicious_wsus_children
    assert [x.process_id for x in bad] == [3400] and bad[0].command_line == "cmd.exe /c whoami & echo <x>"
    assert 5000 not in {x.process_id for x in p.processes.processes}


def test_plain_host_without_wsus_or_enrollment() -> None:
    p = capture(plain_host()).posture
    assert not p.hotpatch.enrolled and p.hotpatch.vbs_status == 1 and p.hotpatch.package_name is None
    assert p.hotpatch.arc_agent_installed is False and p.hotpatch.arc_agent_status is None
    assert p.hotpatch.arc_services == {} and p.hotpatch.feature_licensing_override is None
    assert p.wsus.role_installed is False and p.wsus.api_available is False and p.wsus.last_sync is None
    assert p.wsus.features and not any(p.wsus.features.values())
    assert p.reboot.pending and p.reboot.pending_file_rename_operations is None
    assert p.firewall.rules == {} and p.ports.listeners == () and p.processes.processes == ()
    assert p.events.events == () and p.events.since == BOOT  # no Since: events since last boot
    assert p.updates.installation_type == "Server Core" and p.updates.build == "26100.6899"


def test_wsus_role_with_service_stopped_reports_api_unavailable() -> None:
    w = capture(stopped_wsus_host(), ["wsus"]).posture.wsus
    assert w.role_installed and not w.api_available and "503" in (w.api_error or "")
    assert w.app_pool_state == "Stopped" and w.last_sync is None


def test_failing_probe_is_reported_per_area() -> None:
    cap = capture(plain_host(), ["updates", "firewall", "reboot"], fail={"firewall": "Access is denied."})
    assert not cap.ok and "Access is denied." in cap.errors["firewall"]
    assert cap.posture.updates is not None and cap.posture.reboot is not None and cap.posture.firewall is None
    with pytest.raises(ProbeError) as exc:
        cap.posture.area("firewall")
    assert "vm1" in str(exc.value) and "firewall" in str(exc.value) and "Access is denied." in str(exc.value)
    assert cap.posture.area("updates") is cap.posture.updates


def test_standalone_probe_script_renders_its_document() -> None:
    host = wsus_hotpatch_host()
    text = render_capture(probe_text("updates"), host, {})
    assert text == render_probe("updates", host)
    assert parse_probe("updates", text).build == "26100.6905"


def test_rendering_escapes_like_windows_powershell_51() -> None:
    text = render_probe("firewall", wsus_hotpatch_host())
    assert "\\u003cout\\u003e \\u0026 \\u0027friends\\u0027" in text and "<" not in text
    assert ", " not in text.split('"Rules"')[0].replace('"Domain, Private"', "")  # compressed
    assert json.loads(text)["Rules"][0]["Name"] == "Block-Out-Telnet"


def test_malformed_probe_output_raises_naming_area_and_vm() -> None:
    script = compose_capture(["hotpatch", "updates"])
    text = render_capture(script.body, plain_host(), {}, now=NOW)
    broken = text.replace('"output":"{', '"output":"<html>{', 1)
    with pytest.raises(ProbeError) as exc:
        parse_capture(ScriptResult(name="capture", output=[broken]), vm="vm7")
    assert "probe 'hotpatch'" in str(exc.value) and "vm7" in str(exc.value)


@pytest.mark.parametrize("text", ["", "Get-WsusServer : not recognized", '{"patchgate":"capture/0","probes":[]}',
                                  ('{"patchgate":"capture/1","capturedAt":"2025-10-25T00:00:00Z","probes":[{"area":'
                                   '"nonsense","ok":true,"output":"{}"}]}'),
                                  ('{"patchgate":"capture/1","capturedAt":"2025-10-25T00:00:00Z","probes":[{"area":'
                                   '"reboot","ok":"yes"}]}')])
def test_malformed_envelopes_raise_probe_error(text: str) -> None:
    with pytest.raises(ProbeError) as exc:
        parse_capture(ScriptResult(name="capture", output=[text], errors=["boom"] if not text else []), vm="vm2")
    assert "vm2" in str(exc.value)


def test_single_probe_envelope_collapsed_by_ps51_still_parses() -> None:
    inner = render_probe("reboot", plain_host())
    env = json.dumps({"patchgate": "capture/1", "capturedAt": "\\/Date(1761384600000)\\/".replace("\\/", "/"),
                      "probes": {"area": "reboot", "ok": True, "output": inner, "error": None}})
    cap = parse_capture(ScriptResult(name="capture", output=[env]))
    assert cap.posture.reboot.cbs_reboot_pending and cap.posture.captured_at == dt.datetime(2025, 10, 25, 9, 30,
                                                                                            tzinfo=UTC)


def test_compose_rejects_unknown_areas_and_naive_times() -> None:
    with pytest.raises(ValueError):
        compose_capture(["hotpatch", "bogus"])
    with pytest.raises(ValueError):
        compose_capture(["events"], dt.datetime(2025, 10, 1))
