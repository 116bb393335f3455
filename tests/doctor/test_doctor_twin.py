"""`patchgate doctor` against the twin: every check passes on the default lab, each lab condition fails its own
check with advice (exit 2), bad input exits 4; and a validate on a VM with a pending reboot stops at preflight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.reliability import FAULTY, HEALTHY, lab_data, make_run

# lab condition (a twin fault, or an image) -> the check that must fail on the faulty VM
EXPECTED_CHECK: dict[str, str] = {
    "pending-reboot": "pending reboot",
    "disk-full": "free space",
    "constrained-language": "language mode",
    "clock-skew": "clock",
    "unreachable": "WinRM reachable and auth",
    "auth-failure": "WinRM reachable and auth",
    "never-ready": "guest ready",
    "revert-fails:always": "revert to snapshot",
    "malformed-probe": "posture capture",
    "wsman-fault": "posture capture",
    "image:ws2025-dc-hotpatch-oct2025-nosignals": "hotpatch enrollment",
}

BOOT_ONLY = {"revert-fails:always"}  # only `doctor --boot` reverts


def _doctor(run, *args: str):
    proc = run.patchgate("doctor", "--lab", str(run.lab_file), "--json", *args)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None)


def _failed(doc: dict, vm: str) -> dict[str, dict]:
    return {c["name"]: c for c in doc["vms"][vm] if c["status"] == "fail"}


def _not_ok(checks: list[dict]) -> list[dict]:
    """Checks that are not ok, but for the TLS warning of the test labs' plain-HTTP remoting."""
    return [c for c in checks if c["status"] != "ok" and c["name"] != "remoting TLS"]


def _ledger_actions(run) -> list[tuple[str, str]]:
    paths = sorted((run.state / "runs").glob("*.jsonl"))
    entries = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    return [(entry.get("action"), entry.get("vm")) for entry in entries]


def test_default_twin_lab_passes_every_check(tmp_path: Path) -> None:
    run = make_run(tmp_path, "ok", lab_data("doctor-ok"))
    proc, doc = _doctor(run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(doc["vms"]) == {FAULTY, HEALTHY}
    for vm, checks in doc["vms"].items():
        assert not _not_ok(checks), (vm, checks)
        assert {"name": "power state", "status": "ok", "detail": "poweredOn"}.items() <= next(
            c for c in checks if c["name"] == "power state").items()
        names = {c["name"] for c in checks}
        assert {"language mode", "pending reboot", "free space", "clock", "admin token", "Get-HotFix"} <= names
    wsus = {c["name"]: c for c in doc["vms"][FAULTY]}
    assert wsus["WSUS API"]["status"] == "ok" and wsus["WebAdministration"]["status"] == "ok"
    assert run.at_snapshot(FAULTY) and run.at_snapshot(HEALTHY)  # doctor leaves nothing behind
    assert not {action for action, _vm in _ledger_actions(run)} & {"revert", "install", "reboot", "restored"}
    assert not run.leases()


def test_a_powered_off_vm_is_not_started_and_each_guest_check_warns(tmp_path: Path) -> None:
    lab = lab_data("doctor-off")
    lab["hypervisor"]["settings"] = {"at_rest": "off"}
    run = make_run(tmp_path, "off", lab)
    proc, doc = _doctor(run)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # warnings only: nothing failed
    checks = {c["name"]: c for c in doc["vms"][FAULTY]}
    assert checks["power state"]["status"] == "warn" and checks["power state"]["detail"] == "poweredOff"
    for name in ("WinRM reachable and auth", "language mode", "free space", "pending reboot", "WSUS API"):
        assert checks[name]["status"] == "warn", checks[name]
        assert checks[name]["advice"].startswith("powered off: start it, or run `patchgate doctor --boot`")
    assert "WSUS API" not in {c["name"] for c in doc["vms"][HEALTHY]}  # a member: no WSUS check to warn about
    assert not {action for action, _vm in _ledger_actions(run)} & {"revert", "install", "restored"}

    proc, doc = _doctor(run, "--boot")  # the explicit opt-in: booted from the snapshot, read, restored
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for vm in (FAULTY, HEALTHY):
        assert not _not_ok(doc["vms"][vm]), doc["vms"][vm]
    actions = _ledger_actions(run)
    assert {("revert", FAULTY), ("restored", FAULTY), ("revert", HEALTHY), ("restored", HEALTHY)} <= set(actions)
    assert run.at_snapshot(FAULTY) and run.at_snapshot(HEALTHY) and not run.leases()


@pytest.mark.parametrize("condition", sorted(EXPECTED_CHECK))
def test_each_condition_fails_its_check(tmp_path: Path, condition: str) -> None:
    lab = lab_data(f"doctor-{condition.split(':')[0]}", timeouts={"ready": 1})
    faulty = lab["vms"][0]
    if condition.startswith("image:"):
        faulty.update(role="hotpatch-member", image=condition.split(":", 1)[1])
    else:
        faulty["faults"] = [condition]
    run = make_run(tmp_path, "c", lab)
    proc, doc = _doctor(run, *(["--boot"] if condition in BOOT_ONLY else []))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    failed = _failed(doc, FAULTY)
    assert EXPECTED_CHECK[condition] in failed, failed
    assert failed[EXPECTED_CHECK[condition]]["advice"]
    assert not _failed(doc, HEALTHY), doc["vms"][HEALTHY]
    assert not run.leases()


def test_text_report_names_the_check_and_its_advice(tmp_path: Path) -> None:
    run = make_run(tmp_path, "t", lab_data("doctor-text", faults=["pending-reboot"]))
    proc = run.patchgate("doctor", "--lab", str(run.lab_file), "--vm", FAULTY)
    assert proc.returncode == 2
    line = next(row for row in proc.stdout.splitlines() if "pending reboot" in row)
    assert line.split()[0] == "FAIL"
    assert "take the snapshot again" in proc.stdout
    assert HEALTHY not in proc.stdout


@pytest.mark.parametrize("args", [("--lab", "no-such-lab.yaml"), ("--vm", "nope")])
def test_bad_input_exits_4(tmp_path: Path, args: tuple[str, ...]) -> None:
    run = make_run(tmp_path, "b", lab_data("doctor-bad"))
    full = ["doctor", "--lab", str(run.lab_file), *args] if args[0] == "--vm" else ["doctor", *args]
    proc = run.patchgate(*full)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "patchgate:" in proc.stderr


def test_validate_with_pending_reboot_is_inconclusive_at_preflight(tmp_path: Path) -> None:
    run = make_run(tmp_path, "v", lab_data("preflight-reboot", faults=["pending-reboot"]))
    proc = run.patchgate(*run.command()[1:], timeout=240)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    gate = run.gate()
    assert gate["verdict"] == "inconclusive"
    broken = [c for c in gate["checks"] if c["status"] == "broken" and c["vm"] == FAULTY]
    assert broken and all(c.get("step") == "preflight" for c in broken), broken[:1]
    assert "pending reboot" in broken[0]["message"]
    lines = run.ledger().path.read_text().splitlines()
    events = [(entry.get("action"), entry.get("vm")) for entry in map(json.loads, lines)]
    assert ("install", FAULTY) not in events  # nothing was installed on the VM that failed its preflight
    assert ("install", HEALTHY) in events
    assert run.at_snapshot(FAULTY)


def test_noise_probe_restarts_judges_the_diff_and_restores(tmp_path: Path) -> None:
    lab = lab_data("doctor-noise")
    lab["hypervisor"]["settings"] = {"noise": "realistic", "seed": 7}
    run = make_run(tmp_path, "n", lab)
    proc, doc = _doctor(run, "--noise", "--vm", FAULTY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = doc["noise"][FAULTY]
    assert outcomes["services.auto_start_running"]["status"] in ("passed", "failed")
    assert outcomes["wsus.role"]["status"] == "passed"
    assert outcomes["hotpatch.no_restart"]["status"] == "not judged"  # about a candidate: none was installed
    probe = next(c for c in doc["vms"][FAULTY] if c["name"] == "noise probe")
    failed = [inv for inv, o in outcomes.items() if o["status"] == "failed"]
    assert probe["detail"].startswith(f"restart without an install: {len(failed)} of ")
    actions = _ledger_actions(run)
    assert [a for a, vm in actions if vm == FAULTY] == ["revert", "reboot", "restored"], actions
    assert ("install", FAULTY) not in actions
    assert run.at_snapshot(FAULTY) and not run.leases()

    text = run.patchgate("doctor", "--lab", str(run.lab_file), "--noise", "--vm", FAULTY)
    assert text.returncode == 0, text.stdout + text.stderr
    assert f"noise probe {FAULTY}: restart without an install" in text.stdout
    assert "services.configuration" in text.stdout.split("noise probe", 2)[-1]
