"""Behaviours: conditions, every effect kind, restart rules, faults, WSUS sync, catalogue loading and errors."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pytest

from patchgate.errors import ConfigError
from patchgate_twin.behaviours import (
    CBS_E_NOT_APPLICABLE,
    Behaviour,
    Condition,
    EffectBase,
    WsusRoleMissing,
    apply_install,
    complete_reboot,
    parse_effect,
    run_wsus_sync,
)
from patchgate_twin.catalog import Catalog, load_behaviour_file
from patchgate_twin.model import TIME_SCALE, WindowsHost

NOW = dt.datetime(2025, 10, 25, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def host(catalog: Catalog, name: str = "ws2025-dc-hotpatch-oct2025") -> WindowsHost:
    return catalog.image(name)


def behaviour(data: dict[str, Any]) -> Behaviour:
    return Behaviour.model_validate({"title": "test behaviour", "classification": "synthetic", "synthetic": True,
                                     "restart": "never", **data})


def effect(data: dict[str, Any]) -> EffectBase:
    return parse_effect(data)


# ------------------------------------------------------------------ conditions

@pytest.mark.parametrize(("cond", "image", "expected"), [
    ({"hotpatch_enrolled": True}, "ws2025-dc-hotpatch-oct2025", True),
    ({"hotpatch_enrolled": True}, "ws2025-std-member-oct2025", False),
    ({"wsus_role": True}, "ws2025-dc-wsus-oct2025", True),
    ({"wsus_role": True}, "ws2025-dc-hotpatch-oct2025", False),
    ({"arc_enrolled": True}, "ws2025-azure-edition-oct2025", False),
    ({"azure_edition": True}, "ws2025-azure-edition-oct2025", True),
    ({"edition_in": ["ServerStandard"]}, "ws2025-std-member-oct2025", True),
    ({"edition_in": ["ServerStandard"]}, "ws2025-dc-hotpatch-oct2025", False),
    ({"has_kb": "kb5066835"}, "ws2025-dc-hotpatch-oct2025", True),
    ({"has_kb": ["KB5066835", "KB5070881"]}, "ws2025-dc-hotpatch-oct2025", False),
    ({"not_kb": "KB5070881"}, "ws2025-dc-hotpatch-oct2025-oob", False),
    ({"ubr_in": [6899, 6905]}, "ws2025-dc-hotpatch-oct2025", True),
    ({"ubr_at_least": 6900}, "ws2025-dc-hotpatch-oct2025", False),
    ({"ubr_below": 6900}, "ws2025-dc-hotpatch-oct2025", True),
    ({"license_state": "Unlicensed"}, "ws2025-dc-hotpatch-oct2025-unlicensed", True),
    ({"feature_licensing_override": False}, "ws2025-dc-hotpatch-jul2025", True),
    ({"on_hotpatch_track": True}, "ws2025-dc-hotpatch-oct2025", True),
    ({"on_hotpatch_track": True}, "ws2025-dc-hotpatch-oct2025-oob", False),
    ({"service_running": "WsusService"}, "ws2025-dc-wsus-oct2025", True),
    ({"service_running": "WsusService"}, "ws2025-dc-hotpatch-oct2025", False),
    ({"any": [{"wsus_role": True}, {"azure_edition": True}]}, "ws2025-azure-edition-oct2025", True),
    ({"all": [{"wsus_role": True}, {"azure_edition": True}]}, "ws2025-azure-edition-oct2025", False),
    ({"not": {"wsus_role": True}}, "ws2025-dc-hotpatch-oct2025", True),
    ({"hotpatch_enrolled": True, "wsus_role": True}, "ws2025-dc-hotpatch-oct2025", False),
    ({}, "ws2025-dc-hotpatch-oct2025", True),
])
def test_conditions(catalog: Catalog, cond: dict[str, Any], image: str, expected: bool) -> None:
    assert Condition.model_validate(cond).holds(host(catalog, image)) is expected


def test_guarded_effects_use_the_state_before_the_install(catalog: Catalog) -> None:
    h = host(catalog)
    b = behaviour({"kb": "KB9912345", "effects": [
        {"set": {"hotpatch.hotpatch_table_size": 0}},
        {"when": {"hotpatch_enrolled": True}, "upsert_service": {"name": "Spooler", "state": "Stopped"}},
    ]})
    apply_install(h, b, NOW)
    assert h.hotpatch.hotpatch_table_size == 0 and h.services["Spooler"].state == "Stopped"


# ------------------------------------------------------------------ every effect kind

def test_set_by_dotted_path(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-dc-wsus-oct2025")
    effect({"set": {"hotpatch.hotpatch_table_size": 0, "services.WinRM.start_mode": "Manual",
                                    "wsus.last_sync.result": "Failed", "connection_profiles.0.network_category":
                                    "Public", "edition_id": "ServerStandard"}}).apply(h, NOW)
    assert h.hotpatch.hotpatch_table_size == 0 and h.services["WinRM"].start_mode == "Manual"
    assert h.wsus.last_sync and h.wsus.last_sync.result == "Failed"
    assert h.connection_profiles[0].network_category == "Public" and h.edition_id == "ServerStandard"
    effect({"set": {"hotpatch.enrollment_package": None}}).apply(h, NOW)
    assert h.hotpatch.enrollment_package is None and not h.hotpatch_enrolled


def test_build_and_hotfix_effects(catalog: Catalog) -> None:
    h = host(catalog)
    effect({"set_build": {"ubr": 7092}}).apply(h, NOW)
    effect({"add_hotfix": {"hotfix_id": "kb5068966", "description": "Hotpatch"}}).apply(h, NOW)
    assert h.build == "26100.7092" and h.has_kb("KB5068966")
    added = next(x for x in h.hotfixes if x.hotfix_id == "KB5068966")
    assert added.installed_on == NOW.date() and added.description == "Hotpatch"
    effect({"remove_hotfix": "KB5068966"}).apply(h, NOW)
    assert not h.has_kb("KB5068966")


def test_service_effects_keep_processes_and_log_scm_events(catalog: Catalog) -> None:
    h = host(catalog)
    pid = h.services["CryptSvc"].process_id
    effect({"upsert_service": {"name": "CryptSvc", "state": "Stopped"}}).apply(h, NOW)
    assert h.services["CryptSvc"].process_id == 0 and pid not in {p.process_id for p in h.processes}
    effect({"upsert_service": {"name": "CryptSvc", "state": "Running"}}).apply(h, NOW)
    new_pid = h.services["CryptSvc"].process_id
    assert new_pid and any(p.process_id == new_pid and p.name == "svchost.exe" for p in h.processes)
    effect({"upsert_service": {"name": "Spooler", "start_mode": "Disabled"}}).apply(h, NOW)
    effect({"upsert_service": {"name": "NewSvc", "path_name": r"C:\x\new.exe", "state": "Running",
                                               "start_mode": "Auto"}}).apply(h, NOW)
    ids = [(e.id, e.provider_name) for e in h.events if e.time_created == NOW]
    assert (7036, "Service Control Manager") in ids and (7040, "Service Control Manager") in ids
    assert (7045, "Service Control Manager") in ids
    assert any(p.name == "new.exe" and p.process_id == h.services["NewSvc"].process_id for p in h.processes)
    effect({"remove_service": "NewSvc"}).apply(h, NOW)
    assert "NewSvc" not in h.services and not any(p.name == "new.exe" for p in h.processes)


def test_firewall_effects(catalog: Catalog) -> None:
    h = host(catalog)
    effect({"set_firewall_profile": {"name": "Public", "default_inbound_action": "Allow"}}).apply(h, NOW)
    effect({"upsert_firewall_rule": {"name": "FPS-SMB-In-TCP", "enabled": False}}).apply(h, NOW)
    effect({"upsert_firewall_rule": {"name": "X-In", "local_port": ["4444"]}}).apply(h, NOW)
    effect({"remove_firewall_rule": "WINRM-HTTP-Compat-In-TCP"}).apply(h, NOW)
    assert h.firewall_profiles["Public"].default_inbound_action == "Allow"
    assert h.firewall_profiles["Domain"].default_inbound_action == "Block"
    assert h.firewall_rules["FPS-SMB-In-TCP"].enabled is False
    assert h.firewall_rules["FPS-SMB-In-TCP"].local_port == ["445"]
    assert h.firewall_rules["X-In"].remote_address == ["Any"] and h.firewall_rules["X-In"].display_name == "X-In"
    assert "WINRM-HTTP-Compat-In-TCP" not in h.firewall_rules


def test_connection_port_process_event_effects(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-dc-wsus-oct2025")
    effect({"upsert_connection_profile": {"interface_alias": "Ethernet", "network_category":
                                                          "Public"}}).apply(h, NOW)
    effect({"upsert_connection_profile": {"interface_alias": "Ethernet 2"}}).apply(h, NOW)
    effect({"remove_connection_profile": "Ethernet 2"}).apply(h, NOW)
    assert [(c.interface_alias, c.network_category) for c in h.connection_profiles] == [("Ethernet", "Public")]
    effect({"remove_listening_port": {"local_port": 8530}}).apply(h, NOW)
    assert not any(p.local_port == 8530 for p in h.listening_ports)
    effect({"add_listening_port": {"local_port": 8530, "process_name": "System"}}).apply(h, NOW)
    assert any(p.local_port == 8530 and p.owning_process == 4 for p in h.listening_ports)
    effect({"add_process": {"name": "cmd.exe", "parent_name": "WsusService.exe"}}).apply(h, NOW)
    cmd = next(p for p in h.processes if p.name == "cmd.exe")
    assert cmd.parent_process_id == h.services["WsusService"].process_id
    effect({"remove_process": {"name": "cmd.exe"}}).apply(h, NOW)
    assert not any(p.name == "cmd.exe" for p in h.processes)
    effect({"add_event": {"log_name": "Application", "provider_name": "Windows Server Update Services",
                                          "id": 7053, "level": "Error", "message": "InvalidCastException",
                                          "offset_seconds": 90}}).apply(h, NOW)
    assert not any(e.id == 7053 for e in h.events)  # written when it happens, not ahead of time
    due = NOW + dt.timedelta(seconds=90 * TIME_SCALE)
    assert h.write_due_events(due - dt.timedelta(microseconds=1)) == 0 and h.write_due_events(due) == 1
    ev = h.events[-1]
    assert ev.id == 7053 and ev.time_created == due and ev.log_name == "Application"


def test_reboot_wsus_and_hotpatch_state_effects(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-dc-wsus-oct2025")
    effect({"set_reboot_flags": {"cbs_reboot_pending": True}}).apply(h, NOW)
    effect({"add_pending_file_renames": [r"\??\C:\a.tmp"]}).apply(h, NOW)
    effect({"wsus": {"app_pool_state": "Stopped", "sync_outcome": "Failed"}}).apply(h, NOW)
    effect({"hotpatch": {"license_state": "Unlicensed", "device_licensing_mutex": True}}).apply(h, NOW)
    assert h.reboot.cbs_reboot_pending and h.reboot.pending_file_rename_operations == [r"\??\C:\a.tmp"]
    assert h.wsus.app_pool_state == "Stopped" and h.wsus.role_installed
    assert h.hotpatch.license_state == "Unlicensed" and h.hotpatch.hotpatch_table_size == 4096


@pytest.mark.parametrize(("data", "message"), [
    ({"set": {"hotpatch.nope": 1}}, "'nope' is not a field of HotpatchState"),
    ({"set": {"hotpatch.vbs_status": "x"}}, "hotpatch.vbs_status"),
    ({"set_build": {"ubr": "x"}}, "set_build takes 'ubr'"),
    ({"upsert_service": {"state": "Stopped"}}, "needs 'name'"),
    ({"upsert_service": {"name": "A", "state": "Sleeping"}}, "state"),
    ({"wsus": {"pool": "Stopped"}}, "pool"),
    ({}, "exactly one action"),
    ({"remove_service": "A", "remove_hotfix": "KB5070881"}, "exactly one action"),
    ({"remove_hotfix": "5070881"}, "not a KB id"),
])
def test_bad_effects_are_rejected(data: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        effect(data)


# ------------------------------------------------------------------ installs, restarts, reboots, faults

def test_after_reboot_effects_wait_for_the_restart(catalog: Catalog) -> None:
    h = host(catalog)
    b = behaviour({"kb": "KB9912346", "restart": "always", "effects": [
        {"after": "reboot", "upsert_service": {"name": "Spooler", "state": "Stopped"}},
        {"add_pending_file_renames": [r"\??\C:\Windows\x.dll"]}]})
    outcome = apply_install(h, b, NOW)
    assert outcome.exit_code == 3010 and outcome.effects_pending == 1 and outcome.effects_applied == 1
    assert h.services["Spooler"].state == "Running" and h.reboot.wua_reboot_required
    later = NOW + dt.timedelta(minutes=3)
    complete_reboot(h, later)
    assert h.services["Spooler"].state == "Stopped" and not h.reboot.pending_file_rename_operations
    assert h.last_boot_up_time == later and not h.pending_after_reboot
    assert {6006, 1074, 12} <= {e.id for e in h.events if e.time_created >= NOW}
    assert 6005 not in {e.id for e in h.events if e.time_created >= NOW}  # the event log service is not up yet
    h.write_due_events(later + dt.timedelta(seconds=12 * TIME_SCALE))
    assert 6005 in {e.id for e in h.events if e.time_created >= later}


def test_effect_on_something_the_host_lacks_is_skipped_and_logged(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-azure-edition-oct2025")
    b = behaviour({"kb": "KB9912353", "effects": [{"set": {"services.himds.state": "Stopped"}},
                                                   {"set_build": {"ubr": 6905}}]})
    outcome = apply_install(h, b, NOW)
    assert not outcome.failed and outcome.effects_applied == 1 and h.ubr == 6905
    assert any("skipped" in line and "himds" in line for line in outcome.log)


def test_reboot_starts_auto_services(catalog: Catalog) -> None:
    h = host(catalog)
    effect({"upsert_service": {"name": "CryptSvc", "state": "Stopped"}}).apply(h, NOW)
    complete_reboot(h, NOW)
    assert h.services["CryptSvc"].state == "Running" and h.services["CryptSvc"].process_id


@pytest.mark.parametrize(("image", "restart"), [
    ("ws2025-dc-hotpatch-oct2025", False), ("ws2025-azure-edition-oct2025", False),
    ("ws2025-std-member-oct2025", False), ("ws2025-dc-wsus-oct2025", True), ("ws2025-std-wsus-oct2025", True),
])
def test_kb5070893_restart_rule(catalog: Catalog, image: str, restart: bool) -> None:
    h = host(catalog, image)
    outcome = apply_install(h, catalog.behaviour("KB5070893"), NOW)
    assert not outcome.failed and outcome.restart_needed is restart
    assert h.has_kb("KB5070893")
    if restart:
        assert h.ubr == 6899
        complete_reboot(h, NOW)
    assert h.build == "26100.6905"
    assert h.hotpatch_enrolled == host(catalog, image).hotpatch_enrolled  # keeps enrollment


def test_not_applicable_is_dism_0x800f081e(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-std-member-oct2025")
    before = h.clone()
    outcome = apply_install(h, catalog.behaviour("KB5068966"), NOW)
    assert outcome.failed and outcome.not_applicable and outcome.exit_code == CBS_E_NOT_APPLICABLE
    assert outcome.hresult == "0x800F081E" and "not applicable" in outcome.message
    assert h == before


def test_already_installed_is_a_no_op(catalog: Catalog) -> None:
    h = host(catalog)
    outcome = apply_install(h, catalog.behaviour("KB5066835"), NOW)
    assert outcome.already_installed and not outcome.failed and not outcome.restart_needed


def test_fault_flags(catalog: Catalog) -> None:
    fails = apply_install(host(catalog), catalog.behaviour("KB9900091"), NOW)
    assert fails.failed and fails.hresult == "0x800F0922"
    assert apply_install(host(catalog), catalog.behaviour("KB9900092"), NOW).hangs
    never = apply_install(host(catalog), catalog.behaviour("KB9900093"), NOW)
    assert never.never_ready_after_reboot and never.restart_needed and not never.failed


def test_arc_licensing_break(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-dc-hotpatch-jul2025")
    assert apply_install(h, catalog.behaviour("KB5066835"), NOW).restart_needed
    complete_reboot(h, NOW)
    assert h.hotpatch.license_state == "Unlicensed" and h.hotpatch_enrolled  # local signals unchanged [U]
    outcome = apply_install(h, catalog.behaviour("KB5068966"), NOW)
    assert outcome.restart_needed and h.ubr == 6899  # installs as an LCU: shows after the restart
    complete_reboot(h, NOW)
    assert h.ubr == 7092
    azure = host(catalog, "ws2025-azure-edition-oct2025")
    assert not apply_install(azure, catalog.behaviour("KB5068966"), NOW).restart_needed


def test_oob_then_lcu_then_january_baseline(catalog: Catalog) -> None:
    from patchgate.calendar.schedule import track_status

    h = host(catalog)
    for kb in ("KB5070881", "KB5068861", "KB5073379"):
        outcome = apply_install(h, catalog.behaviour(kb), NOW)
        assert outcome.restart_needed and not outcome.failed, kb
        complete_reboot(h, NOW)
        status = track_status(x.hotfix_id for x in h.hotfixes)
        assert status.on_track is (kb == "KB5073379"), kb
    assert h.build == "26100.32230"


# ------------------------------------------------------------------ WSUS sync

def test_wsus_sync_outcomes(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-dc-wsus-oct2025")
    assert run_wsus_sync(h, NOW).result == "Succeeded"
    h.wsus.app_pool_state = "Stopped"
    info = run_wsus_sync(h, NOW + dt.timedelta(minutes=1), duration=dt.timedelta(seconds=5))
    assert info.result == "Failed" and "WsusPool" in info.error_text
    assert info.end_time - info.start_time == dt.timedelta(seconds=5) and h.wsus.last_sync is info
    h.wsus.app_pool_state = "Started"
    h.services["WsusService"].state = "Stopped"
    assert run_wsus_sync(h, NOW).result == "Failed"
    h.services["WsusService"].state = "Running"
    h.wsus.sync_outcome = "Failed"
    h.wsus.sync_error_text = "boom"
    assert run_wsus_sync(h, NOW).error_text == "boom"
    h.wsus.error_details_hidden = True
    assert run_wsus_sync(h, NOW).error_text == ""
    with pytest.raises(WsusRoleMissing):
        run_wsus_sync(host(catalog), NOW)


def test_regression_makes_next_sync_fail(catalog: Catalog) -> None:
    h = host(catalog, "ws2025-dc-wsus-oct2025")
    apply_install(h, catalog.behaviour("KB9900020"), NOW)
    assert run_wsus_sync(h, NOW).result == "Failed"
    h2 = host(catalog, "ws2025-dc-wsus-oct2025")
    apply_install(h2, catalog.behaviour("KB9900018"), NOW)
    assert run_wsus_sync(h2, NOW).result == "Failed"


# ------------------------------------------------------------------ catalogue files, errors, override

def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_error_names_file_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "catalog", "bad.yaml", """\
        behaviours:
          - kb: KB9912347
            title: broken
            classification: synthetic
            synthetic: true
            effects:
              - upsert_service: {name: WinRM, state: Running}
              - set: {hotpatch.table: 0}
        """)
    with pytest.raises(ConfigError) as info:
        Catalog.load([tmp_path])
    err = info.value
    assert err.file == str(path) and err.line == 8 and err.field == "behaviours[0].effects[1].set"
    assert "'table' is not a field of HotpatchState" in str(err)


def test_restart_errors_point_at_the_condition(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", """\
        behaviours:
          - kb: KB9912348
            title: broken
            classification: synthetic
            synthetic: true
            restart:
              when: {wsus_rol: true}
        """)
    with pytest.raises(ConfigError) as info:
        load_behaviour_file(path)
    assert info.value.line == 7 and info.value.field == "behaviours[0].restart.when.wsus_rol"


def test_real_behaviours_need_sources_and_known_invariants(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", """\
        behaviours:
          - {kb: KB5999999, title: no sources, classification: lcu}
        """)
    with pytest.raises(ConfigError, match="cites its sources"):
        load_behaviour_file(path)
    path.write_text(textwrap.dedent("""\
        behaviours:
          - kb: KB9912349
            title: bad expect
            classification: synthetic
            synthetic: true
            expect: {ws2025-dc-hotpatch-oct2025: {verdict: block, fails: [hotpatch.enrolment]}}
        """))
    with pytest.raises(ConfigError, match="unknown invariant id 'hotpatch.enrolment'"):
        load_behaviour_file(path)


def test_expect_must_name_known_images(tmp_path: Path) -> None:
    write(tmp_path / "catalog", "a.yaml", """\
        behaviours:
          - kb: KB9912350
            title: bad image
            classification: synthetic
            synthetic: true
            expect: {no-such-image: {verdict: approve}}
        """)
    with pytest.raises(ConfigError, match="unknown image 'no-such-image'"):
        Catalog.load([tmp_path])


def test_duplicate_kb_in_one_directory(tmp_path: Path) -> None:
    body = "behaviours:\n  - {kb: KB9912351, title: dup, classification: synthetic, synthetic: true}\n"
    write(tmp_path / "catalog", "a.yaml", body)
    write(tmp_path / "catalog", "b.yaml", body)
    with pytest.raises(ConfigError, match="also defined at .*a.yaml:2"):
        Catalog.load([tmp_path])


def test_twin_catalog_dir_adds_and_overrides(tmp_path: Path, catalog: Catalog) -> None:
    write(tmp_path / "catalog", "lab.yaml", """\
        behaviours:
          - kb: KB5070893
            title: lab override of KB5070893 - always restarts
            classification: wsus-security
            restart: always
            sources: [https://example.invalid/lab-notes]
          - kb: KB9912352
            title: a lab's own behaviour
            classification: synthetic
            synthetic: true
            expect: {lab-wsus: {verdict: approve}}
        """)
    write(tmp_path / "images", "lab-wsus.yaml", "name: lab-wsus\nextends: ws2025-dc-wsus-oct2025\n")
    merged = Catalog.load([tmp_path])
    assert merged.behaviour("KB5070893").restart == "always"
    assert catalog.behaviour("KB5070893").restart != "always"  # the built-in catalogue is untouched
    assert "KB9912352" in {b.kb for b in merged.behaviours()} and "lab-wsus" in merged.images()
    assert merged.behaviour("KB5066835").kb == "KB5066835"  # the rest is still there
    assert apply_install(merged.image("ws2025-dc-hotpatch-oct2025"), merged.behaviour("KB5070893"),
                         NOW).restart_needed


def test_missing_or_empty_catalogue_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Catalog.load([tmp_path / "nope"])
    with pytest.raises(ConfigError, match="found neither"):
        Catalog.load([tmp_path])


# ------------------------------------------------------------------ the expectation table agrees with the engine

def _cases(catalog: Catalog) -> list[tuple[str, str]]:
    return [(b.kb, image) for b in catalog.behaviours() for image in b.expect]


def test_expectation_table_is_consistent_with_the_engine(catalog: Catalog) -> None:
    """Engine-level consequences of each expect row (the verdict itself is the suites' job)."""
    from patchgate.calendar.schedule import track_status

    cases = _cases(catalog)
    assert len(cases) > 60
    for kb, image in cases:
        b = catalog.behaviour(kb)
        exp = b.expect[image]
        h = host(catalog, image)
        before_track = track_status(x.hotfix_id for x in h.hotfixes).on_track
        outcome = apply_install(h, b, NOW)
        if exp.verdict == "inconclusive":
            assert outcome.failed or outcome.hangs or outcome.never_ready_after_reboot, (kb, image)
            continue
        assert not outcome.failed and not outcome.hangs, (kb, image, outcome.log)
        if outcome.restart_needed:
            complete_reboot(h, NOW)
        outside_scope = {kb} if b.classification in ("ssu", "dotnet") else set()  # as the track check judges it
        after_track = track_status((x.hotfix_id for x in h.hotfixes), ignore=outside_scope).on_track
        if "hotpatch.track" in exp.fails:
            assert before_track and not after_track, (kb, image)
        if exp.verdict == "approve" and h.hotpatch_enrolled and before_track:
            assert after_track, (kb, image)
        if "hotpatch.no_restart" in exp.fails:
            assert outcome.restart_needed, (kb, image)
