"""Twin images: loading, inheritance, consistency and errors that name file, field and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from patchgate.errors import ConfigError
from patchgate_twin.catalog import Catalog
from patchgate_twin.images import Images, consistency_problems, load_image, merge

REQUIRED = ["ws2025-dc-hotpatch-oct2025", "ws2025-dc-wsus-oct2025", "ws2025-azure-edition-oct2025",
            "ws2025-std-member-oct2025", "ws2025-dc-hotpatch-jul2025", "ws2025-dc-hotpatch-jan2026"]


@pytest.fixture(scope="module")
def images() -> Images:
    return Images.load()


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_required_images_exist_and_abstract_blocks_are_hidden(images: Images) -> None:
    assert set(REQUIRED) <= set(images.names())
    assert "ws2025-base" not in images.names() and "arc-hotpatch" not in images.names()
    with pytest.raises(KeyError, match="unknown twin image 'ws2025-base'"):
        images.host("ws2025-base")


@pytest.mark.parametrize("name", REQUIRED + ["ws2025-std-wsus-oct2025", "ws2025-dc-hotpatch-oct2025-oob"])
def test_every_image_is_internally_consistent(images: Images, name: str) -> None:
    host = images.host(name)
    assert consistency_problems(host) == []
    assert {"Domain", "Private", "Public"} == set(host.firewall_profiles)
    assert host.services["WinRM"].state == "Running"
    assert any(p.local_port == 5985 for p in host.listening_ports)


def test_hotpatch_member_matches_the_documented_enrollment(images: Images) -> None:
    host = images.host("ws2025-dc-hotpatch-oct2025")
    assert host.hotpatch_enrolled and host.hotpatch.hotpatch_table_size == 0x1000
    assert host.hotpatch.vbs_status == 2 and host.hotpatch.enrollment_package is not None
    assert host.hotpatch.enrollment_package.name == "Hotpatch Enrollment Package"
    assert host.build == "26100.6899" and host.has_kb("KB5066835")
    for name in ("himds", "GCArcService", "ExtensionService"):
        assert host.services[name].state == "Running"
    assert not host.wsus.role_installed


def test_wsus_image_has_role_services_pool_ports_and_rules(images: Images) -> None:
    host = images.host("ws2025-dc-wsus-oct2025")
    assert host.wsus.role_installed and host.wsus.app_pool_state == "Started"
    assert host.hotpatch_enrolled  # the incident's hotpatch-enrolled WSUS server
    for name in ("WsusService", "W3SVC", "WAS", "MSSQL$MICROSOFT##WID"):
        assert host.services[name].state == "Running", name
    ports = {p.local_port: p for p in host.listening_ports}
    assert ports[8530].process_name == "System" and ports[8530].owning_process == 4 and 8531 in ports
    assert {"WSUS-HTTP-In", "WSUS-HTTPS-In"} <= set(host.firewall_rules)
    assert host.wsus.last_sync is not None and host.wsus.last_sync.result == "Succeeded"
    w3wp = next(p for p in host.processes if p.name == "w3wp.exe")
    assert w3wp.parent_process_id == host.services["W3SVC"].process_id


def test_azure_edition_is_enrolled_without_arc(images: Images) -> None:
    host = images.host("ws2025-azure-edition-oct2025")
    assert host.edition_id == "ServerTurbine" and host.is_azure_edition and host.hotpatch_enrolled
    assert not host.hotpatch.arc_enrolled and "himds" not in host.services


def test_std_member_is_not_enrolled(images: Images) -> None:
    host = images.host("ws2025-std-member-oct2025")
    assert host.edition_id == "ServerStandard" and not host.hotpatch_enrolled


def test_calendar_points(images: Images) -> None:
    assert images.host("ws2025-dc-hotpatch-jul2025").build == "26100.4652"
    assert images.host("ws2025-dc-hotpatch-jan2026").build == "26100.32230"
    oob = images.host("ws2025-dc-hotpatch-oct2025-oob")
    assert oob.build == "26100.6905" and oob.has_kb("KB5070881") and oob.has_kb("KB5066835")


def test_each_call_returns_an_independent_copy(images: Images) -> None:
    first = images.host("ws2025-dc-hotpatch-oct2025")
    first.services["WinRM"].state = "Stopped"
    first.hotfixes.clear()
    second = images.host("ws2025-dc-hotpatch-oct2025")
    assert second.services["WinRM"].state == "Running" and second.hotfixes
    assert load_image("ws2025-dc-hotpatch-oct2025").services["WinRM"].state == "Running"


def test_image_class_is_inherited(images: Images) -> None:
    assert images.image_class("ws2025-dc-wsus-oct2025") == "wsus-hotpatch"
    assert images.image_class("ws2025-std-member-jul2025") == "member"


def test_merge_rules() -> None:
    parent = {"services": {"A": {"state": "Running", "start_mode": "Auto"}, "B": {}}, "hotfixes": [1], "x": 1}
    child = {"services": {"A": {"state": "Stopped"}, "B": None}, "hotfixes+": [2], "x": None}
    assert merge(parent, child) == {"services": {"A": {"state": "Stopped", "start_mode": "Auto"}}, "hotfixes": [1, 2]}
    assert merge(parent, {"hotfixes": [3]})["hotfixes"] == [3]
    assert parent["services"]["A"]["state"] == "Running"  # parent untouched


def test_extra_directory_extends_a_builtin_image(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    write(tmp_path / "images", "lab.yaml", """\
        name: lab-hotpatch-no-spooler
        extends: ws2025-dc-hotpatch-oct2025
        host:
          services:
            Spooler: null
          processes: []
          listening_ports: []
        """)
    with pytest.raises(ConfigError, match="inconsistent: service .* Running"):
        Catalog.load([tmp_path])  # processes emptied while services still run


def test_extra_image_overrides_and_inherits(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    write(tmp_path / "images", "lab.yaml", """\
        name: lab-member
        extends: ws2025-std-member-oct2025
        host:
          services:
            Spooler: {state: Stopped, start_mode: Disabled, process_id: 0}
          hotfixes+:
            - {hotfix_id: KB5070881, installed_on: 2025-10-24}
        """)
    catalog = Catalog.load([tmp_path])
    host = catalog.image("lab-member")
    assert host.services["Spooler"].start_mode == "Disabled" and host.services["Spooler"].display_name == "Print Spooler"
    assert [h.hotfix_id for h in host.hotfixes][-2:] == ["KB5066835", "KB5070881"]
    assert host.edition_id == "ServerStandard"


def test_unknown_field_names_file_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", """\
        name: bad
        extends: ws2025-std-member-oct2025
        host:
          services:
            WinRM:
              state: Running
              strat_mode: Auto
        """)
    with pytest.raises(ConfigError) as info:
        Images.load([tmp_path])
    err = info.value
    assert err.file == str(path) and err.line == 7 and err.field == "host.services.WinRM.strat_mode"


def test_bad_value_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", """\
        name: bad2
        extends: ws2025-std-member-oct2025
        host:
          hotpatch:
            vbs_status: running
        """)
    with pytest.raises(ConfigError) as info:
        Images.load([tmp_path])
    assert info.value.line == 5 and "vbs_status" in (info.value.field or "")


def test_unknown_parent_and_loops(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\nextends: nope\n")
    with pytest.raises(ConfigError, match="extends unknown image 'nope'") as info:
        Images.load([tmp_path])
    assert info.value.line == 2
    (tmp_path / "a.yaml").write_text("name: a\nextends: b\n")
    write(tmp_path, "b.yaml", "name: b\nextends: a\n")
    with pytest.raises(ConfigError, match="loops"):
        Images.load([tmp_path])


def test_duplicate_name_in_one_directory(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: twin\nextends: ws2025-std-member-oct2025\n")
    write(tmp_path, "b.yaml", "name: twin\nextends: ws2025-std-member-oct2025\n")
    with pytest.raises(ConfigError, match="also defined"):
        Images.load([tmp_path])
