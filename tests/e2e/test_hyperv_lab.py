"""A Hyper-V lab rehearsed on the twin (labs/hyperv-twin.example.yaml): the engine's Hyper-V provider drives the
twin's Hyper-V host over WSMan/PSRP, and the verdicts are those of the default lab; a killed run is reaped."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from support.runs import PATCHGATE, ROOT, clean_env, kill_group, patchgate
from support.waiting import wait_until

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "labs" / "hyperv-twin.example.yaml"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _validate(lab: str, candidate: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATCHGATE, "validate", "--lab", lab, "--candidate", candidate, "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _outcomes(out: Path) -> tuple[str, set[tuple[str, str, str]]]:
    gate = json.loads((out / "gate.json").read_text())
    return gate["verdict"], {(c["vm"], c["invariant"], c["status"]) for c in gate["checks"]}


GUEST_PASSWORD = "psdirect-canary-Guest-7f3a"  # the guests' password in the PowerShell Direct runs
HOST_PASSWORD = "psdirect-canary-Host-91c2"


def _psdirect_lab(path: Path) -> Path:
    """The example with PowerShell Direct to the guests, and known credentials to look for in every output."""
    lab = yaml.safe_load(EXAMPLE.read_text())
    lab["name"] = "hyperv-twin-direct"
    lab["remoting"] = {"kind": "psdirect", "settings": {"host": lab["remoting"]["settings"]}}
    lab["secrets"] = {"kind": "env"}
    path.write_text(yaml.safe_dump(lab, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, blocked_run, approved_run,
         ) -> dict[tuple[str, str], tuple[subprocess.CompletedProcess[str], Path]]:
    """Both candidates on the Hyper-V lab over WSMan and over PowerShell Direct; labs/twin.yaml's runs of them
    (the session's shared runs, tests/conftest.py) are the reference."""
    base = tmp_path_factory.mktemp("hyperv")
    direct = str(_psdirect_lab(base / "psdirect.yaml"))
    accounts = {"PATCHGATE_USERNAME": "Administrator", "PATCHGATE_PASSWORD": GUEST_PASSWORD,
                "PATCHGATE_HYPERVISOR_USERNAME": "hv-admin", "PATCHGATE_HYPERVISOR_PASSWORD": HOST_PASSWORD}
    done = {("twin", "KB5070881"): (blocked_run.proc, blocked_run.out),
            ("twin", "KB5070893"): (approved_run.proc, approved_run.out)}
    for name, lab in (("hyperv", str(EXAMPLE)), ("psdirect", direct)):
        for candidate in ("KB5070881", "KB5070893"):
            out = base / f"{name}-{candidate}"
            env = clean_env(base / f"state-{name}-{candidate}", **(accounts if name == "psdirect" else {}))
            done[(name, candidate)] = (_validate(lab, candidate, out, env), out)
    return done


@pytest.mark.parametrize("lab", ["hyperv", "psdirect"])
@pytest.mark.parametrize(("candidate", "code", "verdict"), [("KB5070881", 1, "block"), ("KB5070893", 0, "approve")])
def test_the_hyperv_lab_gives_the_default_labs_verdicts(runs, lab: str, candidate: str, code: int,
                                                        verdict: str) -> None:
    proc, out = runs[(lab, candidate)]
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-2000:]
    got, checks = _outcomes(out)
    assert got == verdict
    twin_proc, twin_out = runs[("twin", candidate)]
    assert twin_proc.returncode == code, twin_proc.stdout[-2000:]
    failed = {c for c in checks if c[2] == "failed"}
    assert failed == {c for c in _outcomes(twin_out)[1] if c[2] == "failed"}
    assert {(vm, inv) for vm, inv, _ in checks} == {(vm, inv) for vm, inv, _ in _outcomes(twin_out)[1]}


def test_each_vm_is_restored_by_checkpoint_id_on_the_host(runs) -> None:
    proc, out = runs[("hyperv", "KB5070893")]
    for path in sorted((out / "vms").glob("*.json")):
        record = json.loads(path.read_text())
        assert GUID.match(record["snapshot"]["identifier"]), record["snapshot"]  # the checkpoint's Id
        steps = {s["name"]: s for s in record["steps"]}
        assert steps["revert"]["ok"] and steps["restore"]["ok"], path.name
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert "hv-twin-01" in json.dumps(manifest)
    wsus = json.loads((out / "vms" / "ws25-wsus-01.json").read_text())
    assert "reboot" in {s["name"] for s in wsus["steps"]}  # its install restarted it through Restart-VM


def test_powershell_direct_runs_leave_no_credential_anywhere(runs) -> None:
    for candidate in ("KB5070881", "KB5070893"):
        proc, out = runs[("psdirect", candidate)]
        assert '"remoting": "psdirect"' in (out / "run-manifest.json").read_text()
        texts = [proc.stdout, proc.stderr, *(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())]
        for secret in (GUEST_PASSWORD, HOST_PASSWORD):
            assert not any(secret in text for text in texts), f"{secret} leaked"


def test_reap_restores_what_a_killed_hyperv_run_left(tmp_path: Path) -> None:
    lab = yaml.safe_load(EXAMPLE.read_text())
    lab["name"] = "hyperv-reap"
    for vm in lab["vms"]:
        if vm["name"] == "ws25-mbr-01":
            vm["faults"] = ["install-hangs"]
    lab["timeouts"]["install"] = 600
    lab_path = tmp_path / "lab.yaml"
    lab_path.write_text(yaml.safe_dump(lab, sort_keys=False))
    env = clean_env(tmp_path / "state")
    runs = tmp_path / "state" / "runs"
    run = subprocess.Popen([PATCHGATE, "validate", "--lab", str(lab_path), "--candidate", "KB5070893", "--vm",
                            "ws25-mbr-01", "--out", str(tmp_path / "out")], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: any('"install"' in p.read_text() for p in runs.glob("*.jsonl")) if runs.is_dir()
                   else run.poll() is not None, "the run reaching its install", timeout=120)
        assert run.poll() is None, run.communicate()[0][-3000:]
    finally:
        kill_group(run)
    from patchgate_twin.lab import TwinDisks

    disks = TwinDisks("hyperv-reap", folder=tmp_path / "state" / "twin" / "hyperv-reap")
    assert not disks.at_snapshot("ws25-mbr-01")  # the killed run left it changed
    reaped = patchgate("reap", "--lab", str(lab_path), env=env)
    assert reaped.returncode == 0, reaped.stdout + reaped.stderr
    assert any(line.split()[:2] == ["restored", "ws25-mbr-01"] for line in reaped.stdout.splitlines()), reaped.stdout
    assert disks.at_snapshot("ws25-mbr-01")
    again = patchgate("reap", "--lab", str(lab_path), env=env)
    assert again.returncode == 0 and "nothing to reap" in again.stdout, again.stdout + again.stderr


def test_doctor_checks_the_host_and_the_checkpoints(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "state")
    ok = patchgate("doctor", "--lab", str(EXAMPLE), "--vm", "ws25-hp-01", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"OK\s+hypervisor Hyper-V rights\s+.*hv-twin-01", ok.stdout), ok.stdout
    assert re.search(r"OK\s+hypervisor checkpoint type\s+'baseline-2025-10' is a Standard checkpoint \(VMId "
                     r"[0-9a-f-]{36}\)", ok.stdout), ok.stdout

    lab = yaml.safe_load(EXAMPLE.read_text())
    lab["name"] = "hyperv-doctor"
    lab["vms"][0]["faults"] = ["host-unreachable"]
    lab_path = tmp_path / "lab.yaml"
    lab_path.write_text(yaml.safe_dump(lab, sort_keys=False))
    bad = patchgate("doctor", "--lab", str(lab_path), "--vm", "ws25-hp-01", env=env)
    assert bad.returncode != 0, bad.stdout
    assert re.search(r"FAIL\s+hypervisor reachable and credentials\s+\[host hv-twin-01, step connect\]", bad.stdout), \
        bad.stdout
