"""Findings of a Windows review, each shown in a real run: a change that slipped past a check before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchgate_twin.catalog import Catalog
from tests.invariants import catalogue_runs as cr
from tests.invariants.catalogue_runs import Run, vm_name

pytestmark = pytest.mark.slow

IMAGE = "ws2025-dc-hotpatch-oct2025"
VM = vm_name(IMAGE)
RDP_GROUP = "@FirewallAPI.dll,-28752"  # Remote Desktop, the group a lab may allow an LCU to change


def _run(root: Path, name: str, kb: str, policy: dict | None = None) -> Run:
    catalog = Catalog.load()
    behaviour = catalog.behaviour(kb)
    folder = root / name
    lab = cr.write_lab(folder, catalog, [IMAGE], name=f"review-{name}", policy=policy)
    candidate = cr.write_candidate(folder / "candidate", behaviour, cr.target_build(catalog, behaviour, [IMAGE]))
    return cr.run_validate(lab, candidate, folder / "out", pycache=root / "pycache")


def test_moving_a_rule_into_an_allowlisted_group_does_not_escape_the_rule_check(tmp_path: Path) -> None:
    run = _run(tmp_path, "regroup", "KB9900033", {"allow": {"firewall_rule_groups": [RDP_GROUP]}})
    assert run.returncode == 1 and run.failed(VM) == {"firewall.rules"}, run.explain(VM)
    message = run.message(VM, "firewall.rules")
    for word in ("WINRM-HTTP-In-TCP-PUBLIC", "group", "@FirewallAPI.dll,-35001", RDP_GROUP, "remote_address"):
        assert word in message, f"{word!r} missing:\n{message}"


WSUS_IMAGE = "ws2025-dc-wsus-oct2025"


def _wsus_run(root: Path, kb: str) -> Run:
    catalog = Catalog.load()
    behaviour = catalog.behaviour(kb)
    lab = cr.write_lab(root / kb, catalog, [WSUS_IMAGE], name=f"review-{kb.lower()}")
    candidate = cr.write_candidate(root / kb / "candidate", behaviour,
                                   cr.target_build(catalog, behaviour, [WSUS_IMAGE]))
    return cr.run_validate(lab, candidate, root / kb / "out", pycache=root / "pycache")


def test_wsus_7053_needs_every_sigma_marker_to_be_an_exploitation_indicator(tmp_path: Path) -> None:
    vm = vm_name(WSUS_IMAGE)
    generic = _wsus_run(tmp_path, "KB9900034")  # one marker: an ordinary console error
    assert generic.returncode == 0 and generic.verdict(vm) == "approve", generic.explain(vm)
    exploit = _wsus_run(tmp_path, "KB9900023")  # all four markers of the Sigma rule
    assert exploit.failed(vm) == {"wsus.exploitation_indicators"}, exploit.explain(vm)
    assert "event 7053" in exploit.message(vm, "wsus.exploitation_indicators"), exploit.explain(vm)


def test_an_app_pool_that_cannot_be_read_is_inconclusive_not_a_stopped_pool(tmp_path: Path) -> None:
    vm = vm_name(WSUS_IMAGE)
    run = _wsus_run(tmp_path, "KB9900035")
    assert run.returncode == 2 and run.verdict(vm) == "inconclusive", run.explain(vm)
    check = next(c for c in run.checks(vm) if c["invariant"] == "wsus.app_pool")
    assert check["status"] == "broken" and "WebAdministration" in check["message"], run.explain(vm)
    assert "wsus.app_pool" not in run.failed(vm)


def test_the_licence_mutex_is_evidence_and_the_documented_consequence_blocks(tmp_path: Path) -> None:
    """KB5066835 on an Arc machine without Microsoft's workaround: the licence signals change (evidence, the
    baseline itself approves); the next hotpatch then installs with a restart, and that blocks."""
    catalog = Catalog.load()
    runs = {}
    for kb, image in (("KB5066835", "ws2025-dc-hotpatch-jul2025"), ("KB5068966", "ws2025-dc-hotpatch-oct2025-unlicensed")):
        behaviour = catalog.behaviour(kb)
        folder = tmp_path / kb
        lab = cr.write_lab(folder, catalog, [image], name=f"review-licence-{kb.lower()}")
        candidate = cr.write_candidate(folder / "candidate", behaviour, cr.target_build(catalog, behaviour, [image]))
        runs[kb] = (cr.run_validate(lab, candidate, folder / "out", pycache=tmp_path / "pycache"), vm_name(image))
    baseline, vm = runs["KB5066835"]
    assert baseline.verdict(vm) == "approve", baseline.explain(vm)
    hotpatch, vm = runs["KB5068966"]
    assert hotpatch.failed(vm) == {"hotpatch.no_restart"}, hotpatch.explain(vm)


def test_a_sync_that_could_not_work_before_the_update_is_lab_trouble(tmp_path: Path) -> None:
    """No upstream from the lab (the baseline's last sync failed): the failed sync after the update is not the
    update's fault, so wsus.sync is broken (inconclusive), not failed."""
    image = "ws2025-std-wsus-oct2025-no-upstream"
    catalog = Catalog.load()
    behaviour = catalog.behaviour("KB5070881")
    lab = cr.write_lab(tmp_path / "run", catalog, [image], name="review-no-upstream")
    candidate = cr.write_candidate(tmp_path / "run" / "candidate", behaviour,
                                   cr.target_build(catalog, behaviour, [image]))
    run = cr.run_validate(lab, candidate, tmp_path / "run" / "out", pycache=tmp_path / "pycache")
    vm = vm_name(image)
    check = next(c for c in run.checks(vm) if c["invariant"] == "wsus.sync")
    assert check["status"] == "broken" and "before the update was Failed" in check["message"], run.explain(vm)
    assert run.returncode == 2 and "wsus.sync" not in run.failed(vm), run.explain(vm)


def test_interface_type_and_security_conditions_are_captured_and_compared(tmp_path: Path) -> None:
    run = _run(tmp_path, "conditions", "KB9900036")
    assert run.returncode == 1 and run.failed(VM) == {"firewall.rules"}, run.explain(VM)
    message = run.message(VM, "firewall.rules")
    for word in ("RemoteDesktop-UserMode-In-TCP", "interface_type", "RemoteAccess", "encryption", "Dynamic"):
        assert word in message, f"{word!r} missing:\n{message}"


def test_the_evidence_records_whether_the_package_went_in_hot(tmp_path: Path) -> None:
    """Get-WindowsPackage -Online after the install: Installed (in effect now) or InstallPending (after a restart)."""
    import json

    states = {}
    for kb in ("KB5070893", "KB5070881"):  # hotpatch-compatible on a non-WSUS machine; an OOB LCU that restarts
        run = _run(tmp_path, kb.lower(), kb)
        summary = json.loads((run.out_dir / "vms" / f"{VM}.json").read_text())
        states[kb] = {p["PackageState"] for p in summary["install"]["packages"]}
    assert states == {"KB5070893": {"Installed"}, "KB5070881": {"InstallPending"}}
