"""`patchgate validate` as a user runs it: verdicts, exit codes, evidence, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from patchgate.run.settle import looks_in

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path_factory, monkeypatch) -> None:
    """Each test's runs have a state folder of their own (leases, twin disks): tests of the default lab on other
    xdist workers never hold its VMs meanwhile (a kept VM, a reap)."""
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATCHGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def blocked(blocked_run) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The shared KB5070881 run of the default lab (tests/conftest.py)."""
    return blocked_run.proc, blocked_run.out


@pytest.fixture(scope="module")
def approved(approved_run) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The shared KB5070893 run of the default lab (tests/conftest.py)."""
    return approved_run.proc, approved_run.out


def gate(out: Path) -> dict:
    return json.loads((out / "gate.json").read_text())


def test_kb5070881_is_blocked_for_leaving_the_hotpatch_track(blocked):
    proc, out = blocked
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = gate(out)
    assert data["verdict"] == "block"
    failed = {(c["vm"], c["invariant"]) for c in data["checks"] if c["status"] == "failed"}
    assert ("ws25-hp-01", "hotpatch.track") in failed
    assert all(inv == "hotpatch.track" for _, inv in failed), failed
    assert "hotpatch.track" in proc.stdout and "ws25-hp-01" in proc.stdout
    assert "signature: unsigned (the lab does not sign verdicts)" in proc.stdout
    message = next(c["message"] for c in data["checks"] if c["vm"] == "ws25-hp-01" and c["status"] == "failed")
    assert "KB5070881" in message and "not installed" in message and "installed" in message


def test_kb5070893_is_approved(approved):
    proc, out = approved
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = gate(out)
    assert data["verdict"] == "approve"
    assert data["counts"]["passed"] > 40 and "failed" not in data["counts"]


def test_gate_json_has_the_documented_fields(blocked):
    data = gate(blocked[1])
    for key in ("verdict", "candidate", "lab", "started_at", "finished_at", "checks", "remoting", "cert_validation"):
        assert key in data
    assert data["candidate"]["kb"] == "KB5070881" and data["lab"]["name"] == "twin"
    assert data["remoting"]["kind"] == "psrp"
    statuses = {c["status"] for c in data["checks"]}
    assert statuses <= {"passed", "failed", "broken", "skipped", "waived"}
    for check in data["checks"]:
        assert {"vm", "area", "invariant", "status", "message"} <= set(check)


def test_outputs_are_written(blocked):
    out = blocked[1]
    assert (out / "junit.xml").is_file()
    assert any((out / "allure-results").glob("*-result.json"))
    junit = (out / "junit.xml").read_text()
    assert 'name="patchgate.verdict" value="block"' in junit
    assert 'name="patchgate.candidate" value="KB5070881"' in junit


def test_restart_is_recorded_not_hidden(approved):
    vms = {vm["name"]: vm for vm in gate(approved[1])["vms"]}
    # KB5070893 restarts only where the WSUS role is present (Microsoft, via BleepingComputer)
    assert vms["ws25-wsus-01"]["rebooted"] is True
    assert vms["ws25-wsus-01"]["install"]["restart_needed"] is True
    assert vms["ws25-hp-01"]["rebooted"] is False
    assert any(step["name"] == "reboot" for step in vms["ws25-wsus-01"]["steps"])


def test_every_vm_is_restored_and_each_capture_is_one_pipeline(approved):
    for vm in gate(approved[1])["vms"]:
        assert vm["restored"] is True, vm["name"]
        counters = vm["remoting"]["counters"]
        # preflight, baseline + post capture, fetch (the VM pulls the one package), install (which hashes what it
        # installs) (+ wsus-sync on the WSUS server), the settle window's looks, and after a restart one pipeline
        # proving remoting is back
        looks = sum(looks_in(step.get("detail", "")) for step in vm["steps"] if step["name"].startswith("settle"))
        expected = 5 + (1 if vm["role"] == "wsus-server" else 0) + looks + (1 if vm["rebooted"] else 0)
        assert counters["pipelines"] == expected, (vm["name"], counters)
        assert counters["Create"] == 1 + (1 if vm["rebooted"] else 0), (vm["name"], counters)


def test_gate_command_reprints_the_verdict_with_its_exit_code(blocked, approved):
    assert run("gate", str(blocked[1])).returncode == 1
    proc = run("gate", str(approved[1]), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "approve"


def test_never_ready_vm_gives_inconclusive_and_is_still_restored(tmp_path):
    lab = (ROOT / "labs" / "twin.yaml").read_text()
    lab = lab.replace("    image: ws2025-std-member-oct2025\n",
                      "    image: ws2025-std-member-oct2025\n    faults: [never-ready]\n")
    lab = lab.replace("  ready: 60", "  ready: 1")
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(lab)
    proc = run("validate", "--lab", str(lab_file), "--candidate", "KB5070893", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout[-2000:]
    data = gate(tmp_path / "out")
    assert data["verdict"] == "inconclusive"
    broken = [c for c in data["checks"] if c["status"] == "broken"]
    assert broken and all(c["vm"] == "ws25-mbr-01" for c in broken)
    assert all(c.get("step") == "wait_ready" for c in broken)
    assert all(vm["restored"] for vm in data["vms"])


def test_install_failure_is_lab_trouble_not_a_regression(tmp_path):
    lab = (ROOT / "labs" / "twin.yaml").read_text().replace(
        "    image: ws2025-dc-hotpatch-oct2025\n", "    image: ws2025-dc-hotpatch-oct2025\n    faults: [install-fails]\n")
    (tmp_path / "lab.yaml").write_text(lab)
    proc = run("validate", "--lab", str(tmp_path / "lab.yaml"), "--candidate", "KB5070893",
               "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    data = gate(tmp_path / "out")
    assert {c["step"] for c in data["checks"] if c["status"] == "broken"} == {"install"}


@pytest.mark.parametrize("args, needle", [
    (["validate", "--lab", "twin", "--candidate", "KB1234567"], "unknown candidate 'KB1234567'"),
    (["validate", "--lab", "nosuchlab", "--candidate", "KB5070881"], "unknown lab 'nosuchlab'"),
    (["validate", "--lab", "twin", "--candidate", "KB5070881", "--frobnicate"], "unrecognized arguments"),
    (["validate", "--lab", "twin", "--candidate", "KB5070881", "--vm", "nope"], "--vm nope"),
    (["explode"], "invalid choice"),
])
def test_usage_errors_exit_4_with_one_line(args, needle):
    proc = run(*args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_malformed_lab_file_exits_4_naming_file_field_and_line(tmp_path):
    lab = (ROOT / "labs" / "twin.yaml").read_text().replace("role: wsus-server", "role: wsus")
    path = tmp_path / "bad.yaml"
    path.write_text(lab)
    proc = run("validate", "--lab", str(path), "--candidate", "KB5070881")
    assert proc.returncode == 4
    line = next(i for i, text in enumerate(lab.splitlines(), 1) if "role: wsus" in text)
    assert proc.stderr.strip().startswith(f"patchgate: {path}:{line}: field 'vms[2].role'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_pytest_entry_point_runs_the_same_suites(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "--lab", "twin", "--candidate", "KB5070881",
                           "--out", str(tmp_path), "-q", "-p", "no:cacheprovider", "-m", "hotpatch"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:]
    data = gate(tmp_path)
    assert data["verdict"] == "block"
    assert {c["area"] for c in data["checks"]} == {"hotpatch"}


def test_narrowing_by_role_runs_only_those_vms(tmp_path):
    proc = run("validate", "--lab", "twin", "--candidate", "KB5070893", "--role", "wsus-server",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert {vm["name"] for vm in gate(tmp_path)["vms"]} == {"ws25-wsus-01"}


def test_keep_on_failure_skips_the_final_revert_and_says_so(tmp_path):
    proc = run("validate", "--lab", "twin", "--candidate", "KB5070881", "--vm", "ws25-hp-01", "--keep-on-failure",
               "--out", str(tmp_path))
    assert proc.returncode == 1
    vm = gate(tmp_path)["vms"][0]
    assert vm["kept"] is True and vm["restored"] is False
    kept = [line for line in proc.stdout.splitlines() if line.startswith("  KEPT    ws25-hp-01")]
    assert kept and "not restored" in kept[0] and "restore it with: patchgate reap --lab " in kept[0], proc.stdout
    lab_file = kept[0].rsplit("--lab ", 1)[1]
    reap = run("reap", "--lab", lab_file)
    assert reap.returncode == 0 and "ws25-hp-01" in reap.stdout, reap.stdout + reap.stderr


def test_the_suites_run_with_the_gates_plugins_and_no_others(tmp_path):
    """hypothesis is installed beside patchgate (the harness's tests use it) and registers a pytest plugin; the gate's
    pytest must not load it, nor anything else it did not name."""
    proc = run("validate", "--lab", "twin", "--candidate", "KB5070893", "--out", str(tmp_path), "--",
               "--collect-only", "-q", "--trace-config")
    registered = {line.split("'")[1] for line in proc.stdout.splitlines()
                  if line.startswith("PLUGIN registered: <module '")}
    third_party = {name for name in registered if not name.startswith(("_pytest.", "patchgate_pytest.", "conftest"))}
    assert third_party == {"xdist.plugin", "allure_pytest.plugin", "testinfra.plugin"}, proc.stdout[-3000:]
    assert "hypothesis" not in proc.stdout


def test_a_second_run_into_a_used_output_folder_is_refused_and_leaves_it_as_it_was(blocked):
    out = blocked[1]
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    proc = run("validate", "--lab", "twin", "--candidate", "KB5070893", "--out", str(out))
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert str(out) in proc.stderr and "another run's evidence" in proc.stderr and "--out" in proc.stderr
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert gate(out)["verdict"] == "block"


def test_the_pytest_entry_point_refuses_a_folder_with_a_stray_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not evidence of this run\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "--lab", "twin", "--candidate", "KB5070893",
                           "--out", str(tmp_path), "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "notes.txt" in proc.stderr and str(tmp_path) in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_narrowed_approve_says_partial_everywhere_and_fails_require_full(tmp_path):
    import xml.etree.ElementTree as ET

    out = tmp_path / "out"
    proc = run("validate", "--lab", "twin", "--candidate", "KB5070893", "--role", "wsus-server", "--out", str(out),
               "--", "-k", "sync")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = gate(out)
    assert data["verdict"] == "approve" and data["partial"] is True
    assert data["selection"]["roles"] == ["wsus-server"] and data["selection"]["keyword"] == "sync"
    assert data["reason"].startswith("approve (partial: role wsus-server; -k sync): all 1 checks passed")
    assert "verdict: APPROVE (partial) for KB5070893" in proc.stdout
    props = {p.get("name"): p.get("value") for p in ET.parse(out / "junit.xml").getroot().iter("property")}
    assert props["patchgate.partial"] == "true" and props["patchgate.selection"] == "role wsus-server; -k sync"
    assert json.loads((out / "run-manifest.json").read_text())["selection"]["partial"] is True
    assert run("gate", str(out)).returncode == 0
    strict = run("gate", str(out), "--require-full")
    assert strict.returncode == 2 and "--require-full" in strict.stderr and "-k sync" in strict.stderr


def test_a_whole_lab_approve_is_not_partial_and_passes_require_full(approved):
    proc, out = approved
    assert gate(out)["partial"] is False and "(partial" not in gate(out)["reason"]
    assert run("gate", str(out), "--require-full").returncode == 0


TRANSITION = re.compile(r"^\[\s*\d+\.\ds\] \S+\s+\S+\s+(ok|FAILED|retrying)")


def test_without_a_terminal_the_output_is_one_ordered_stream(blocked):
    """The lifecycle lines (the restores too) come before the verdict, the verdict before the failures, and the
    failures before pytest's closing lines."""
    out = blocked[0].stdout.splitlines()
    last_transition = max(i for i, line in enumerate(out) if TRANSITION.match(line))
    verdict = next(i for i, line in enumerate(out) if "patchgate verdict: BLOCK" in line)
    failures = next(i for i, line in enumerate(out) if re.match(r"^=+ FAILURES =+$", line))
    junit = next(i for i, line in enumerate(out) if "generated xml file" in line)
    assert last_transition < verdict < failures < junit, "\n".join(out[last_transition - 3:junit + 1])
    assert any(re.match(r"^\[\s*\d+\.\ds\] ws25-hp-01\s+restore\s+ok", line) for line in out[:verdict])


def test_plain_pytest_on_the_suites_is_the_same_ordered_stream(tmp_path):
    """`pytest suites` without patchgate validate around it (no terminal): each VM's lifecycle lines, in the order
    its steps ran, before the first row of results; the restores before the verdict; the verdict before the
    failures."""
    env = {**os.environ, "PATCHGATE_STATE_DIR": str(tmp_path / "state")}
    env.pop("PATCHGATE_PROGRESS", None)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "--lab", "twin",
                           "--candidate", "KB5070881", "--vm", "ws25-hp-01", "--vm", "ws25-mbr-01",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    shown: dict[str, list[str]] = {}
    for line in lines:
        if TRANSITION.match(line):
            vm, step = line.split("]", 1)[1].split()[:2]
            shown.setdefault(vm, []).append(step)
    for vm in gate(out)["vms"]:
        assert shown[vm["name"]] == [s["name"] for s in vm["steps"]], (vm["name"], shown)
    first_row = next(i for i, line in enumerate(lines) if re.match(r"^suites/test_\w+\.py ", line))
    verdict = next(i for i, line in enumerate(lines) if "patchgate verdict: BLOCK" in line)
    failures = next(i for i, line in enumerate(lines) if re.match(r"^=+ FAILURES =+$", line))
    restores = [i for i, line in enumerate(lines) if TRANSITION.match(line) and " restore " in line]
    rows = [i for i, line in enumerate(lines) if re.match(r"^suites/test_\w+\.py ", line)]
    transitions = [i for i, line in enumerate(lines) if TRANSITION.match(line)]
    assert len(restores) == 2 and max(restores) < verdict < failures, "\n".join(lines[:verdict + 2])
    assert min(transitions) < first_row  # the lab phase shows as it happens
    assert all(i < first_row or i > max(rows) for i in transitions)  # never between the rows of results


def test_a_step_that_needed_a_retry_says_so_and_quiet_mode_keeps_the_verdict_on_its_own_line(tmp_path):
    lab = (ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(lab)
    data["name"] = "twin-retry"
    for vm in data["vms"]:
        if vm["name"] == "ws25-hp-01":
            vm["faults"] = ["revert-fails:1"]
    path = tmp_path / "twin-retry.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    proc = run("validate", "--lab", str(path), "--candidate", "KB5070893", "--vm", "ws25-hp-01",
               "--out", str(tmp_path / "out"), "--", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(re.match(r"^\[\s*\d+\.\ds\] ws25-hp-01\s+revert\s+retrying \(attempt 2\)$", line) for line in lines)
    assert any(re.match(r"^\[\s*\d+\.\ds\] ws25-hp-01\s+revert\s+ok after 2 attempts \(\d+\.\d\ds\)$", line)
               for line in lines), proc.stdout[-3000:]
    banner = next(line for line in lines if "patchgate verdict: APPROVE" in line)
    assert banner.startswith("="), banner


def unreachable_vsphere_lab(tmp_path: Path) -> Path:
    """The vSphere rehearsal lab pointed at a local port nobody listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = (ROOT / "labs" / "vsphere-sim.example.yaml").read_text(encoding="utf-8")
    text = re.sub(r"    ca_bundle: .*\n", "    cert_validation: false\n", text).replace("8989", str(port))
    path = tmp_path / "vsphere-down.yaml"
    path.write_text(text, encoding="utf-8")
    return path


CREDENTIALS = {"PATCHGATE_HYPERVISOR_USERNAME": "patchgate", "PATCHGATE_HYPERVISOR_PASSWORD": "not-a-real-pw-1",
               "PATCHGATE_USERNAME": "Administrator", "PATCHGATE_PASSWORD": "not-a-real-pw-2"}


def run_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    return subprocess.run([PATCHGATE, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**clean, **env})


def test_a_missing_credential_variable_is_one_line_of_bad_input(tmp_path):
    lab = unreachable_vsphere_lab(tmp_path)
    env = {k: v for k, v in CREDENTIALS.items() if k != "PATCHGATE_HYPERVISOR_USERNAME"}
    proc = run_env({**env, "PATCHGATE_STATE_DIR": str(tmp_path / "state")}, "validate", "--lab", str(lab),
                   "--candidate", "KB5070881", "--out", str(tmp_path / "out"))
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"patchgate: {lab}: secrets.kind is env but PATCHGATE_HYPERVISOR_USERNAME is not set: export "
        "PATCHGATE_HYPERVISOR_USERNAME (docs/lab-file.md, secrets)"]
    assert not (tmp_path / "out").exists()


def test_an_unreachable_vcenter_is_one_line_per_vm_without_tracebacks(tmp_path):
    lab = unreachable_vsphere_lab(tmp_path)
    env = {**CREDENTIALS, "PATCHGATE_STATE_DIR": str(tmp_path / "state")}
    proc = run_env(env, "validate", "--lab", str(lab), "--candidate", "KB5070881", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "ERROR at setup" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    broken = [line for line in proc.stdout.splitlines() if line.startswith("  BROKEN  ")]
    assert len(broken) == 4 and all("cannot reach https://127.0.0.1:" in line for line in broken), broken
    assert len(proc.stdout.splitlines()) < 60, proc.stdout
    debug = run_env(env, "validate", "--lab", str(lab), "--candidate", "KB5070881", "--vm", "ws25-hp-01",
                    "--out", str(tmp_path / "out-debug"), "--", "--log-level=DEBUG")
    assert debug.returncode == 2 and "ERROR at setup of" in debug.stdout, debug.stdout[-2000:]


def test_a_suite_that_cannot_be_imported_is_inconclusive_with_its_own_error(tmp_path):
    """pytest's collection error is what the user sees (not a crash of the gate's own reporting), and the verdict
    names the module: no invariant was checked, so nothing is approved."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "suites", project / "suites", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "conftest.py", project / "conftest.py")
    (project / "suites" / "test_zz_broken.py").write_text("import no_such_module_for_the_gate\n")
    out = tmp_path / "out"
    proc = run("validate", "--lab", "twin", "--candidate", "KB5070893", "--suites", str(project / "suites"),
               "--out", str(out))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ModuleNotFoundError: No module named 'no_such_module_for_the_gate'" in proc.stdout
    assert "AttributeError" not in proc.stdout + proc.stderr
    assert gate(out)["verdict"] == "inconclusive"
    assert "suites/test_zz_broken.py" in gate(out)["reason"]
