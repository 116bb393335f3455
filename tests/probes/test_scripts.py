"""The .ps1 probes themselves: markers, sources, the 5.1-safe JSON idioms, syntax, and agreement with the twin."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from patchgate.model.posture import AREAS
from patchgate.probes import probe_text
from patchgate.probes.batch import capture_areas, compose_capture, probe_hashes
from patchgate_twin.render import render_document
from probes.hosts import wsus_hotpatch_host


@pytest.mark.parametrize("area", AREAS)
def test_probe_header_and_output_idiom(area: str) -> None:
    text = probe_text(area)
    assert text.splitlines()[0] == f"# patchgate-probe: {area}"
    assert "Sources:" in text and "https://" in text
    assert "$ErrorActionPreference = 'Stop'" in text
    # exactly one document, arrays kept as arrays by -InputObject (no pipeline unrolling)
    assert len(re.findall(r"ConvertTo-Json -InputObject .* -Depth \d+ -Compress", text)) == 1
    assert "| ConvertTo-Json" not in text


@pytest.mark.parametrize("area", AREAS)
def test_twin_document_keys_are_the_scripts_keys(area: str) -> None:
    """Every key the twin prints is a property the real script builds (keeps script and twin in step)."""
    doc = render_document(area, wsus_hotpatch_host(), {"Since": "2025-10-01T00:00:00Z"})
    text = probe_text(area)

    def keys(value):
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from keys(v)
        elif isinstance(value, list):
            for v in value:
                yield from keys(v)

    missing = sorted({k for k in keys(doc) if not re.search(rf"\b{re.escape(k)}\s*=", text)})
    assert missing == []


def test_firewall_reads_active_store_and_each_filter_once() -> None:
    text = probe_text("firewall")
    assert "$store = 'ActiveStore'" in text
    for cmd in ("Get-NetFirewallPortFilter", "Get-NetFirewallAddressFilter", "Get-NetFirewallApplicationFilter",
                "Get-NetFirewallServiceFilter", "Get-NetFirewallRule", "Get-NetFirewallProfile"):
        assert len(re.findall(rf"{cmd} -PolicyStore \$store", text)) == 1, cmd
    assert "AssociatedNetFirewallRule" not in text.split("#>")[1]


def test_reboot_reads_pending_file_rename_as_a_value() -> None:
    text = probe_text("reboot")
    assert not re.search(r"Test-Path[^\n]*PendingFileRenameOperations", text)
    assert "-Name 'PendingFileRenameOperations'" in text
    assert "Microsoft.Update.SystemInfo" in text


def test_events_and_wsus_guards() -> None:
    events = probe_text("events")
    assert events.count("@(Get-WinEvent ") == 2 and events.count("-ErrorAction SilentlyContinue -FilterHashtable") == 2
    for i in (7000, 7001, 7009, 7011, 7022, 7023, 7024, 7026, 7031, 7032, 7034, 7040, 7045):
        assert str(i) in events
    assert "Id = 7053" in events and "Properties[0]" in events
    wsus = probe_text("wsus")
    assert "if ($roleInstalled)" in wsus and "Get-WsusServer" in wsus and "GetLastSynchronizationInfo()" in wsus
    hot = probe_text("hotpatch")
    for needle in ("4264695439", "DeviceLicensingServiceCommandMutex", "HotPatchTableSize", "Win32_DeviceGuard",
                   "EnableVirtualizationBasedSecurity", "Hotpatch.$arch", "show -j"):
        assert needle in hot


def test_composed_capture_embeds_each_probe_in_a_region() -> None:
    script = compose_capture(["updates", "events", "reboot"])
    body = script.body
    assert body.splitlines()[0] == "# patchgate-op: capture"
    assert capture_areas(body) == ["updates", "events", "reboot"]
    assert body.count("#endregion") == 3 and body.count("try {") >= 3
    assert probe_text("events").strip() in body
    assert "& $__pgProbe -Since $Since" in body and script.parameters == {}
    assert "2025" not in body.split("#region")[0]  # parameters are never interpolated


def test_probe_hashes_cover_every_script() -> None:
    hashes = probe_hashes()
    assert set(hashes) == {f"{a}.ps1" for a in AREAS}
    data = resources.files("patchgate.probes").joinpath("wsus.ps1").read_bytes()
    assert hashes["wsus.ps1"] == hashlib.sha256(data).hexdigest()


def _syntax_errors(source: bytes) -> list[str]:
    ts = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    tree = ts.Parser(ts.Language(grammar.language())).parse(source)
    errors: list[str] = []

    def walk(node) -> None:
        if node.type == "ERROR" or node.is_missing:
            errors.append(f"line {node.start_point[0] + 1}: {node.text[:60]!r}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return errors


@pytest.mark.parametrize("area", AREAS)
def test_probe_parses_as_powershell(area: str) -> None:
    assert _syntax_errors(probe_text(area).encode()) == []


def test_composed_capture_parses_as_powershell() -> None:
    assert _syntax_errors(compose_capture(AREAS).body.encode()) == []


@pytest.mark.parametrize("op", ["stage-prepare", "fetch", "install"])
def test_op_script_parses_as_powershell(op: str) -> None:
    from patchgate.remoting.staging import load_op_script

    assert _syntax_errors(load_op_script(op).encode()) == []


# SCM message templates (netevent.dll): which %n names the service. 7009/7011 open with the timeout.
SCM_SERVICE_INSERT = {7000: 1, 7001: 1, 7009: 2, 7011: 2, 7022: 1, 7023: 1, 7024: 1, 7031: 1, 7032: 3, 7034: 1,
                      7040: 1, 7045: 1, 7026: None}


def test_events_probe_takes_the_service_from_each_ids_own_insertion_string() -> None:
    text = probe_text("events")
    table = re.search(r"\$serviceIndex = @\{([^}]*)\}", text)
    assert table, "events.ps1 must map event ids to the insertion string naming the service"
    mapping = {int(k): int(v) for k, v in re.findall(r"(\d{4})\s*=\s*(-?\d+)", table.group(1))}
    for event_id, insert in SCM_SERVICE_INSERT.items():
        expected = -1 if insert is None else insert - 1
        assert mapping.get(event_id, 0) == expected, event_id
    assert "Properties[0].Value" not in text  # no id reads a fixed position


def test_reboot_probe_does_not_ask_wua_what_it_cannot_answer_remotely() -> None:
    """ISystemInformation is not usable from a remote computer (WUA docs): over WinRM it was always null."""
    text = probe_text("reboot")
    assert "Microsoft.Update.SystemInfo" not in text.split("#>", 1)[1]  # no COM call, only the explanation
    assert "using-wua-from-a-remote-computer" in text
    doc = render_document("reboot", wsus_hotpatch_host(), {})
    assert doc["WuaRebootRequired"] is None  # the twin answers as a real VM over WinRM


def test_hotpatch_probe_watches_every_arc_agent_service() -> None:
    text = probe_text("hotpatch")
    services = re.search(r"Get-Service -Name ([^|]*?) -ErrorAction", text)
    assert services is not None
    names = set(re.findall(r"'([A-Za-z]+)'", services.group(1)))
    assert {"himds", "GCArcService", "ExtensionService", "arcproxy"} <= names


def test_capture_refuses_a_restricted_endpoint_with_a_clear_message_first() -> None:
    """JEA/ConstrainedLanguage endpoints cannot run the probes: the capture says so before its first .NET call."""
    body = compose_capture().body
    check = body.index("$ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage'")
    assert check < body.index("New-Object") and check < body.index("#region patchgate-probe:")
    assert "JEA and ConstrainedLanguage endpoints are not supported: docs/remoting.md" in body


def test_wsus_sync_waits_for_a_new_synchronization_and_converts_times_as_the_probe_does() -> None:
    from patchgate.actions import action_script

    body = action_script("wsus-sync").body
    assert body.index("$previousId =") < body.index("$subscription.StartSynchronization()")  # last Id first
    loop = body[body.index("do {"):body.index("} while")]
    assert '"$($info.Id)" -ne $previousId' in loop  # the wait ends only on a new sync Id ...
    assert "$deadline" in loop  # ... and is bounded
    assert "-not $isNew" in body[body.index("} while"):]
    assert ".ToUniversalTime().ToString('o')" not in body.split("function ConvertTo-IsoUtc", 1)[0]
    probe = probe_text("wsus")
    assert "SpecifyKind($d, [DateTimeKind]::Utc)" in body and "SpecifyKind($d, [DateTimeKind]::Utc)" in probe


@pytest.mark.parametrize("op", ["wsus-approve", "wsus-unapprove", "wsus-client"])
def test_wsus_op_parses_as_powershell_with_its_marker(op: str) -> None:
    """The WSUS ops (docs/wsus.md), and the SYSTEM task's script the client op writes out, parse as PowerShell."""
    from patchgate.wsus.ops import wsus_script

    body = wsus_script(op).body
    assert body.startswith(f"# patchgate-op: {op}\n")
    assert _syntax_errors(body.encode()) == []
    if op == "wsus-client":
        job = body.split("@'\n", 1)[1].split("\n'@", 1)[0]
        assert "CreateUpdateInstaller" in job and _syntax_errors(job.encode()) == []
