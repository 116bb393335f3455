"""The twin's WSUS: approvals per group, what it offers whom (offered_to windows, applicability), and the engine's
WSUS ops against it through the in-process session (the real op scripts, parsed by the engine)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from patchgate.config import load_lab
from patchgate.errors import LabError
from patchgate.wsus.ops import approve, client_install, unapprove
from patchgate_twin.behaviours.offering import OfferRule
from patchgate_twin.catalog import Catalog
from patchgate_twin.inprocess_remoting import InProcessSession
from patchgate_twin.lab import build_twin_lab
from patchgate_twin.shell_impl import TwinShell

ROOT = Path(__file__).resolve().parents[2]
INCIDENT = dt.date(2025, 10, 23)
SERVER, ENROLLED, AZURE = "ws25-wsus-01", "ws25-hp-01", "ws25-az-01"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize("kb, day, offered", [
    ("KB5070881", INCIDENT, {"ws2025-dc-hotpatch-oct2025", "ws2025-azure-edition-oct2025",
                             "ws2025-std-member-oct2025"}),
    ("KB5070881", None, {"ws2025-std-member-oct2025"}),
    ("KB5070893", INCIDENT, set()),  # not released yet on that day
    ("KB5070893", None, {"ws2025-dc-hotpatch-oct2025", "ws2025-azure-edition-oct2025"}),
    ("KB5064010", None, set()),  # the August 2025 hotpatch: approved or not, it applies to none of these
])
def test_each_update_is_offered_to_the_hosts_its_rules_name(catalog, kb, day, offered):
    images = ("ws2025-dc-hotpatch-oct2025", "ws2025-azure-edition-oct2025", "ws2025-std-member-oct2025")
    behaviour = catalog.behaviour(kb)
    assert {i for i in images if behaviour.offered_by_wsus(catalog.image(i), day)} == offered


def test_an_offer_window_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="not after"):
        OfferRule.model_validate({"from": "2025-10-24", "until": "2025-10-24"})


def _shell(image: str, client_faults: tuple[str, ...] = ()) -> TwinShell:
    """The example lab with this image on its WSUS server and these faults on ws25-hp-01, up and running."""
    lab = load_lab(ROOT / "labs" / "twin-wsus.example.yaml")
    changes = {SERVER: {"image": image}, ENROLLED: {"faults": list(client_faults)}}
    lab = lab.model_copy(update={"vms": [vm.model_copy(update=changes.get(vm.name, {})) for vm in lab.vms]})
    twin = build_twin_lab(lab, [], durable=False)
    for vm in (SERVER, ENROLLED, AZURE):
        twin.revert(vm)
        twin.power_on(vm)
    return TwinShell(twin)


def _client(shell: TwinShell, vm: str, url: str, group: str = "patchgate-lab"):
    return client_install(InProcessSession(shell, vm), vm=vm, url=url, group=group, task_name="patchgate-wsus-t",
                          task_timeout=60, timeout=30)


def test_the_incident_window_offers_kb5070881_to_an_enrolled_vm_and_the_undo_removes_the_approval():
    shell = _shell("ws2025-std-wsus-oct2025-incident")
    server = InProcessSession(shell, SERVER)
    approval = approve(server, server=SERVER, kb="KB5070881", group="patchgate-lab", timeout=30)
    assert approval.group_created and approval.previous_targeting_mode == "Server"
    assert shell.wsus.approved(SERVER, "patchgate-lab") == {"KB5070881"}
    result = _client(shell, ENROLLED, approval.url)
    assert [o["Kb"] for o in result.offered] == ["KB5070881"] and result.installed == ["KB5070881"]
    assert result.reboot_required and result.result_code == 2 and result.task_removed
    assert shell.wsus.policies[ENROLLED]["TargetGroup"] == "patchgate-lab"
    undone = unapprove(server, approval, timeout=30)
    assert undone["Removed"] == 1 and shell.wsus.approved(SERVER, "patchgate-lab") == set()
    assert _client(shell, AZURE, approval.url).offered == []  # nothing approved any more


def test_the_later_rules_offer_kb5070893_and_withhold_kb5070881_from_enrolled_vms():
    shell = _shell("ws2025-std-wsus-oct2025")
    server = InProcessSession(shell, SERVER)
    approve(server, server=SERVER, kb="KB5070881", group="patchgate-lab", timeout=30)
    approval = approve(server, server=SERVER, kb="KB5070893", group="patchgate-lab", timeout=30)
    assert not approval.group_created
    result = _client(shell, ENROLLED, approval.url)
    assert [o["Kb"] for o in result.offered] == ["KB5070893"]
    assert result.offered[0]["Hotpatch"] is False and result.installed == ["KB5070893"]


def test_an_update_the_servers_metadata_does_not_hold_cannot_be_approved():
    shell = _shell("ws2025-std-wsus-oct2025-incident")
    with pytest.raises(LabError, match="holds no approvable update KB5070893"):
        approve(InProcessSession(shell, SERVER), server=SERVER, kb="KB5070893", group="g", timeout=30)


def test_another_group_and_an_unknown_server_are_offered_nothing():
    shell = _shell("ws2025-std-wsus-oct2025-incident")
    approval = approve(InProcessSession(shell, SERVER), server=SERVER, kb="KB5070881", group="patchgate-lab",
                       timeout=30)
    assert _client(shell, ENROLLED, approval.url, group="other-lab").offered == []
    lost = _client(shell, ENROLLED, "http://nowhere.lab.twin:8530")
    assert lost.result_code == 4 and lost.error and "no WSUS server answers" in lost.error


def test_a_reverted_server_has_no_approvals():
    shell = _shell("ws2025-std-wsus-oct2025-incident")
    approve(InProcessSession(shell, SERVER), server=SERVER, kb="KB5070881", group="patchgate-lab", timeout=30)
    shell.lab.revert(SERVER)
    shell.lab.power_on(SERVER)
    assert shell.wsus.approved(SERVER, "patchgate-lab") == set()


def test_an_install_fault_fails_the_task_with_what_was_offered():
    shell = _shell("ws2025-std-wsus-oct2025-incident", client_faults=("install-fails",))
    approval = approve(InProcessSession(shell, SERVER), server=SERVER, kb="KB5070881", group="patchgate-lab",
                       timeout=30)
    result = _client(shell, ENROLLED, approval.url)
    assert result.result_code == 4 and "install-fails" in (result.error or "")
    assert [o["Kb"] for o in result.offered] == ["KB5070881"] and result.installed == []
    assert not shell.lab.host(ENROLLED).has_kb("KB5070881")


def test_production_mode_approves_existing_groups_only_with_a_deadline_and_status_reads_it_back():
    import datetime as dt

    from patchgate.wsus.production import approve_for_group, read_kb

    shell = _shell("ws2025-std-wsus-oct2025")
    server = InProcessSession(shell, SERVER)
    with pytest.raises(LabError, match="no computer target group 'ring1-servers'"):
        approve_for_group(server, server=SERVER, kb="KB5070893", group="ring1-servers", deadline=None)
    shell.wsus.server(SERVER, shell.lab.host(SERVER)).groups.add("ring1-servers")
    due = dt.datetime(2026, 12, 10, 18, 0, tzinfo=dt.UTC)
    approve_for_group(server, server=SERVER, kb="KB5070893", group="ring1-servers", deadline=due)
    state = read_kb(server, server=SERVER, kb="KB5070893")
    assert [(a.group, a.action, a.deadline) for a in state.approvals] == [("ring1-servers", "Install", due)]
    assert "ring1-servers" in state.groups and state.updates == 1
    assert shell.wsus.server(SERVER, shell.lab.host(SERVER)).targeting_mode == "Server"  # left alone
    assert read_kb(server, server=SERVER, kb="KB5070881").approvals == []
    assert read_kb(server, server=SERVER, kb="KB9999999").updates == 0
