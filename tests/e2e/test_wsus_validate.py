"""`patchgate validate` with `install: {via: wsus}`: in the October 2025 incident's offering window KB5070881 is
offered to the enrolled VMs and blocks on wsus.offered and hotpatch.track; with Microsoft's later offering rules the
enrolled VMs are offered KB5070893 and the run approves. The evidence shows what each VM was offered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
EXAMPLE = ROOT / "labs" / "twin-wsus.example.yaml"
ENROLLED = ("ws25-hp-01", "ws25-az-01")
SERVER = "ws25-wsus-01"

pytestmark = pytest.mark.slow


def _validate(lab: Path, kb: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATCHGATE, "validate", "--lab", str(lab), "--candidate", kb, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def _evidence(out: Path, vm: str) -> dict:
    return json.loads((out / "vms" / f"{vm}.json").read_text())


@pytest.fixture(scope="module")
def incident(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("wsus-incident")
    return _validate(EXAMPLE, "KB5070881", out), out


@pytest.fixture(scope="module")
def later_lab(tmp_path_factory) -> Path:
    """The example with Microsoft's later offering rules: its WSUS server holds the newest metadata."""
    lab = tmp_path_factory.mktemp("wsus-later") / "lab.yaml"
    text = EXAMPLE.read_text()
    assert "image: ws2025-std-wsus-oct2025-incident" in text
    lab.write_text(text.replace("image: ws2025-std-wsus-oct2025-incident", "image: ws2025-std-wsus-oct2025"))
    return lab


@pytest.fixture(scope="module")
def later(later_lab) -> tuple[subprocess.CompletedProcess[str], Path]:
    return _validate(later_lab, "KB5070893", later_lab.parent / "out"), later_lab.parent / "out"


def test_kb5070881_offered_in_the_incident_window_blocks_the_enrolled_vms(incident):
    proc, out = incident
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    gate = json.loads((out / "gate.json").read_text())
    assert gate["verdict"] == "block"
    failed = {(c["vm"], c["invariant"]) for c in gate["checks"] if c["status"] == "failed"}
    assert failed == {(vm, inv) for vm in ENROLLED for inv in ("wsus.offered", "hotpatch.track")}
    message = next(c["message"] for c in gate["checks"] if c["invariant"] == "wsus.offered" and c["status"] == "failed")
    assert "WSUS offered KB5070881" in message and "off the hotpatch track" in message


def test_the_evidence_shows_what_each_vm_was_offered_and_that_the_approval_was_undone(incident):
    _proc, out = incident
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert manifest["lab"]["install"] == {"via": "wsus", "server": SERVER, "group": "patchgate-lab", "url": None}
    assert set(manifest["scripts"]["wsus"]) == {"wsus-approve.ps1", "wsus-client.ps1", "wsus-status.ps1",
                                                "wsus-unapprove.ps1"}
    for vm in ENROLLED:
        wsus = _evidence(out, vm)["wsus"]
        assert [o["Kb"] for o in wsus["offered"]] == ["KB5070881"] and wsus["installed"] == ["KB5070881"]
        assert wsus["result"] == "Succeeded" and wsus["reboot_required"] is True and wsus["task_removed"] is True
        assert wsus["server"] == SERVER and wsus["group"] == "patchgate-lab"
    server = _evidence(out, SERVER)
    assert server["wsus"]["approval"]["kb"] == "KB5070881"
    assert server["wsus"]["undo"]["Removed"] == 1
    steps = [s["name"] for s in server["steps"]]
    assert steps.index("wsus_approve") < steps.index("wsus_wait_clients") < steps.index("wsus_unapprove") \
        < steps.index("install")


def test_with_the_later_rules_enrolled_vms_are_offered_kb5070893_and_the_run_approves(later):
    proc, out = later
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    gate = json.loads((out / "gate.json").read_text())
    assert gate["verdict"] == "approve"
    offered = {c["vm"]: c["status"] for c in gate["checks"] if c["invariant"] == "wsus.offered"}
    assert offered == {"ws25-hp-01": "passed", "ws25-az-01": "passed", SERVER: "skipped"}
    for vm in ENROLLED:
        assert [o["Kb"] for o in _evidence(out, vm)["wsus"]["offered"]] == ["KB5070893"]


def test_kb5070881_with_the_later_rules_is_not_offered_to_enrolled_vms_so_the_run_cannot_approve(later_lab):
    out = later_lab.parent / "out-kb5070881"
    proc = _validate(later_lab, "KB5070881", out)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    for vm in ENROLLED:
        evidence = _evidence(out, vm)
        assert evidence["wsus"]["offered"] == [] and evidence["failed_step"] == "install"
        assert f"WSUS did not offer KB5070881 to VM {vm} (offered: nothing)" in evidence["error"]


def test_a_client_whose_install_fails_is_lab_trouble_and_the_approval_is_still_undone(tmp_path):
    lab = tmp_path / "lab.yaml"
    lab.write_text(EXAMPLE.read_text().replace("    image: ws2025-dc-hotpatch-oct2025\n",
                                               "    image: ws2025-dc-hotpatch-oct2025\n    faults: [install-fails]\n"))
    proc = _validate(lab, "KB5070881", tmp_path / "out")
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    broken = _evidence(tmp_path / "out", "ws25-hp-01")
    assert broken["failed_step"] == "install" and "ResultCode 4" in broken["error"]
    assert broken["wsus"]["result"] == "Failed" and broken["wsus"]["task_removed"] is True
    assert _evidence(tmp_path / "out", SERVER)["wsus"]["undo"]["Removed"] == 1


def test_doctor_warns_that_hotpatch_through_wsus_is_unverified_on_the_enrolled_vms():
    proc = subprocess.run([PATCHGATE, "doctor", "--lab", str(EXAMPLE), "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    vms = json.loads(proc.stdout)["vms"]
    for vm in ENROLLED:
        checks = {c["name"]: c for c in vms[vm]}
        warning = checks["hotpatch through WSUS"]
        assert warning["status"] == "warn" and "[U]" in warning["detail"]
        assert checks["install through WSUS"]["status"] == "ok"
    assert "hotpatch through WSUS" not in {c["name"] for c in vms[SERVER]}
