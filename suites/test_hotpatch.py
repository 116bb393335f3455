"""Hotpatch: an enrolled Windows Server 2025 machine must stay enrolled and on the hotpatch track.

Enrollment is three local signals (Hotpatch Enrollment Package, HotPatchTableSize > 0, VBS running = 2) plus the
Arc agent on Arc-enrolled Standard/Datacenter. Being on the track is a matter of installed KBs: both KB5070881 and
KB5070893 report build 26100.6905, but only KB5070893 keeps the machine on the track (Microsoft Learn, Hotpatch
for Arc-enabled servers, Known issues, 2025-10-30).
"""

from __future__ import annotations

import pytest

from fixtures.invariants import applies_to, invariant
from fixtures.messages import before_after, violation
from patchgate.calendar import allowed_kbs_for, classify
from patchgate.errors import LabError

pytestmark = applies_to("hotpatch-member", "wsus-server", "member")


@pytest.fixture
def enrolled(obs):
    """Only machines enrolled before the update; a hotpatch-member snapshot that is not enrolled is a lab fault."""
    if obs.baseline.area("hotpatch").enrolled:
        return obs
    if obs.vm.role == "hotpatch-member":
        raise LabError("role is hotpatch-member but the baseline is not hotpatch-enrolled: fix the snapshot",
                       vm=obs.vm.name, step="capture_baseline")
    pytest.skip(f"{obs.vm.name} is not hotpatch-enrolled at baseline")


@invariant("hotpatch.enrollment", severity="blocker")
def test_enrollment_kept(enrolled):
    before, after = enrolled.baseline.area("hotpatch"), enrolled.post.area("hotpatch")
    assert after.enrolled, before_after(enrolled, "hotpatch enrollment lost after the update", [
        ("Hotpatch Enrollment Package", before.package_name, after.package_name),
        ("HotPatchTableSize", before.hotpatch_table_size, after.hotpatch_table_size),
        ("VBS status (2 = running)", before.vbs_status, after.vbs_status)])


@invariant("hotpatch.arc_agent", severity="critical")
def test_arc_agent_running(enrolled):
    before, after = enrolled.baseline.area("hotpatch"), enrolled.post.area("hotpatch")
    edition = enrolled.baseline.area("updates").edition_id
    if edition == "ServerTurbine":
        pytest.skip("Datacenter: Azure Edition hotpatches without Azure Arc")
    himds_before = before.arc_services.get("himds")
    if himds_before is None or himds_before.status != "Running":
        pytest.skip("not Arc-enrolled at baseline (himds not running)")
    himds_after = after.arc_services.get("himds")
    status_after = himds_after.status if himds_after else "absent"
    assert status_after == "Running", before_after(
        enrolled, "the Azure Arc agent (himds) stopped; hotpatch on Standard/Datacenter needs it", [
            ("himds", himds_before.status, status_after),
            ("azcmagent status", before.arc_agent_status, after.arc_agent_status)])


@invariant("hotpatch.no_restart", severity="blocker")
def test_hotpatch_installs_without_restart(enrolled, candidate):
    if candidate.classification != "hotpatch":
        pytest.skip(f"{candidate.kb} is classified '{candidate.classification}', a restart may be expected")
    install = enrolled.install
    boot_before = enrolled.baseline.area("updates").last_boot_up_time
    boot_after = enrolled.post.area("updates").last_boot_up_time
    assert not install.restart_needed and not enrolled.rebooted and boot_before == boot_after, before_after(
        enrolled, f"hotpatch {candidate.kb} demanded or caused a restart", [
            ("RestartNeeded", False, install.restart_needed),
            ("rebooted", False, enrolled.rebooted),
            ("LastBootUpTime", boot_before, boot_after)])


@invariant("hotpatch.build", severity="critical")
def test_build_is_the_candidates(enrolled, candidate):
    before, after = enrolled.baseline.area("updates"), enrolled.post.area("updates")
    assert after.build == candidate.target_build, before_after(
        enrolled, f"OS build after installing {candidate.kb} is not the build it targets",
        [("CurrentBuild.UBR", before.build, after.build), ("target", "", candidate.target_build)])


@invariant("hotpatch.track", severity="blocker")
def test_stays_on_hotpatch_track(enrolled, policy):
    before = enrolled.baseline.area("updates").kb_ids
    after = enrolled.post.area("updates").kb_ids
    allowed = allowed_kbs_for(before) | set(policy.allow.kbs)
    offending = sorted((after - before) - allowed)
    assert not offending, violation(
        enrolled, "installed KB(s) outside the hotpatch track for this quarter: the machine left the track and "
        "will take monthly restart LCUs until the next baseline",
        [(kb, classify(kb), "not installed", "installed") for kb in offending],
        headers=("KB", "calendar class", "before", "after"),
        hint="Allowed on this track: " + ", ".join(sorted(allowed)))


@invariant("hotpatch.reboot_pending", severity="critical")
def test_no_reboot_pending_left(enrolled):
    before, after = enrolled.baseline.area("reboot"), enrolled.post.area("reboot")
    new_renames = sorted(set(after.pending_file_rename_operations or ()) -
                         set(before.pending_file_rename_operations or ()))
    assert not after.pending and not new_renames, before_after(
        enrolled, "the update left the machine waiting for a restart", [
            ("CBS RebootPending", before.cbs_reboot_pending, after.cbs_reboot_pending),
            ("CBS RebootInProgress", before.cbs_reboot_in_progress, after.cbs_reboot_in_progress),
            ("CBS PackagesPending", before.cbs_packages_pending, after.cbs_packages_pending),
            ("WU RebootRequired", before.wu_reboot_required, after.wu_reboot_required),
            ("WUA RebootRequired", before.wua_reboot_required, after.wua_reboot_required),
            ("new PendingFileRenameOperations", "", ", ".join(new_renames) or "none")])
