"""`install: {via: wsus}` with an existing WSUS outside the lab (`wsus.server: {address: ...}`): a twin WSUS served
on its own (patchgate_twin.production, published to the lab's VMs). The incident window blocks the enrolled VMs on
wsus.offered and hotpatch.track, the later rules approve KB5070893, and the approval is gone from that WSUS after
every run, read back through the WSUS API over PSRP: also after Ctrl-C. Bad `wsus.server` forms exit 4."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from patchgate.config import load_lab
from patchgate.wsus.external import external_server
from patchgate.wsus.production import production_session, read_kb
from patchgate_twin.production import ProductionWsus
from support.reliability import communicate_or_explain
from support.runs import PATCHGATE, ROOT, clean_env, kill_group, patchgate
from support.waiting import wait_until

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "labs" / "twin-wsus-external.example.yaml"
ENROLLED = ("ws25-hp-01", "ws25-az-01")
NAME, GROUP = "wsus-ext-01", "patchgate-lab"
USER, PASSWORD = "labadmin", "Twin-lab-account-2026!"
INCIDENT, LATER = "ws2025-std-wsus-oct2025-incident", "ws2025-std-wsus-oct2025"


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("external-state")


@pytest.fixture(scope="module")
def env(state) -> dict[str, str]:
    return clean_env(state, PATCHGATE_LAB_USERNAME=USER, PATCHGATE_LAB_PASSWORD=PASSWORD)


def _serve(state: Path, image: str) -> ProductionWsus:
    server = ProductionWsus(username=USER, password=PASSWORD, name=NAME, image=image, groups=(), publish=state)
    server.start()
    return server


def _lab(folder: Path, port: int, text: str | None = None) -> Path:
    text = text or EXAMPLE.read_text()
    assert "port: 55985" in text
    path = folder / "lab.yaml"
    path.write_text(text.replace("port: 55985", f"port: {port}"))
    return path


def _on_server(lab: Path, kb: str, monkeypatch) -> tuple[list[str], set[str]]:
    """The KB's approval groups and every group on the external WSUS, read back over PSRP with the lab's account."""
    monkeypatch.setenv("PATCHGATE_LAB_USERNAME", USER)
    monkeypatch.setenv("PATCHGATE_LAB_PASSWORD", PASSWORD)
    with production_session(NAME, external_server(load_lab(lab))) as session:
        held = read_kb(session, server=NAME, kb=kb)
    return sorted(a.group for a in held.approvals), set(held.groups)


def _validate(lab: Path, kb: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return patchgate("validate", "--lab", str(lab), "--candidate", kb, "--out", str(out), env=env)


@pytest.fixture(scope="module")
def incident(tmp_path_factory, state, env):
    folder = tmp_path_factory.mktemp("external-incident")
    with _serve(state, INCIDENT) as server:
        lab = _lab(folder, server.port)
        yield _validate(lab, "KB5070881", folder / "out", env), folder / "out", lab


def test_the_incident_window_blocks_the_enrolled_vms_through_the_external_wsus(incident):
    proc, out, _lab_file = incident
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    gate = json.loads((out / "gate.json").read_text())
    failed = {(c["vm"], c["invariant"]) for c in gate["checks"] if c["status"] == "failed"}
    assert failed == {(vm, inv) for vm in ENROLLED for inv in ("wsus.offered", "hotpatch.track")}
    for vm in ENROLLED:
        wsus = json.loads((out / "vms" / f"{vm}.json").read_text())["wsus"]
        assert wsus["server"] == NAME and [o["Kb"] for o in wsus["offered"]] == ["KB5070881"]
    evidence = json.loads((out / "wsus.json").read_text())
    assert evidence["server"] == NAME and evidence["approval"]["group_created"] is True
    assert evidence["undo"]["Removed"] == 1 and evidence["undo"]["GroupRemoved"] is True
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert manifest["lab"]["install"]["server"] == NAME and manifest["lab"]["install"]["external"]["address"] == \
        "127.0.0.1"
    assert PASSWORD not in proc.stdout + proc.stderr + (out / "wsus.json").read_text()


def test_the_ledger_names_the_approval_before_it_is_made_and_its_undo(incident, state):
    proc, out, _lab_file = incident
    run_id = json.loads((out / "run-manifest.json").read_text())["run_id"]
    ledger = [json.loads(line) for line in (state / "runs" / f"{run_id}.jsonl").read_text().splitlines()]
    external = [e for e in ledger if e.get("external")]
    assert [e["action"] for e in external] == ["wsus_approve", "wsus_approved", "wsus_unapprove"]
    assert all(e["server"] == NAME and e.get("kb", "KB5070881") == "KB5070881" for e in external)


def test_the_approval_is_read_back_gone_over_psrp(tmp_path, state, env, monkeypatch):
    with _serve(state, INCIDENT) as server:
        lab = _lab(tmp_path, server.port)
        proc = _validate(lab, "KB5070881", tmp_path / "out", env)
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
        groups, all_groups = _on_server(lab, "KB5070881", monkeypatch)
        assert groups == [] and GROUP not in all_groups


def test_with_the_later_rules_kb5070893_approves_and_the_approval_is_undone(tmp_path, state, env, monkeypatch):
    with _serve(state, LATER) as server:
        lab = _lab(tmp_path, server.port)
        proc = _validate(lab, "KB5070893", tmp_path / "out", env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        gate = json.loads((tmp_path / "out" / "gate.json").read_text())
        offered = {c["vm"]: c["status"] for c in gate["checks"] if c["invariant"] == "wsus.offered"}
        assert offered == {vm: "passed" for vm in ENROLLED}
        assert _on_server(lab, "KB5070893", monkeypatch)[0] == []


def _start_approved_run(folder: Path, port: int, env: dict[str, str], monkeypatch):
    """A validate whose VM hangs in its install, returned once the external WSUS holds the lab's approval."""
    # the hung guest does not answer; after the interrupt the harness gives up on it at the read timeout (twice:
    # it reconnects once), so short WSMan timeouts keep the run short
    text = (EXAMPLE.read_text()
            .replace("    image: ws2025-dc-hotpatch-oct2025\n",
                     "    image: ws2025-dc-hotpatch-oct2025\n    faults: [install-hangs]\n")
            .replace("    read_timeout: 30\n", "    read_timeout: 6\n")
            .replace("    operation_timeout: 20\n", "    operation_timeout: 4\n"))
    lab = _lab(folder, port, text)
    proc = subprocess.Popen([PATCHGATE, "validate", "--lab", str(lab), "--candidate", "KB5070881", "--out",
                             str(folder / "out")], cwd=ROOT, env={**env, "PYTHONFAULTHANDLER": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: _on_server(lab, "KB5070881", monkeypatch)[0] == [GROUP] or proc.poll() is not None,
                   "the approval on the external WSUS", timeout=120, interval=0.5)
        assert proc.poll() is None, proc.communicate()
    except BaseException:
        kill_group(proc)
        raise
    return lab, proc


def test_a_run_interrupted_with_sigint_still_undoes_the_approval(tmp_path, state, env, monkeypatch):
    with _serve(state, INCIDENT) as server:
        lab, proc = _start_approved_run(tmp_path, server.port, env, monkeypatch)
        try:
            proc.send_signal(signal.SIGINT)
            output = communicate_or_explain(proc, 180)  # a hang explains itself: every process's stacks
        finally:
            kill_group(proc)
        # 2: the suites wrote an inconclusive verdict; 130: interrupted before one could be written
        assert proc.returncode in (2, 130), output[-5000:]
        groups, all_groups = _on_server(lab, "KB5070881", monkeypatch)
        assert groups == [] and GROUP not in all_groups
        assert json.loads((tmp_path / "out" / "wsus.json").read_text())["undo"]["Removed"] == 1


@pytest.mark.parametrize(("server", "field"), [
    ("{address: 127.0.0.1, bogus: 1}", "wsus.server.bogus"),
    ("{port: 5985}", "wsus.server.address"),
    ("{address: 127.0.0.1, port: 0}", "wsus.server.port"),
    ("{address: 127.0.0.1, name: ws25-hp-01}", "wsus.server.name"),
])
def test_bad_server_forms_exit_4_naming_the_field(tmp_path, env, server, field):
    text = EXAMPLE.read_text()
    start, end = text.index("  server:"), text.index("  group: patchgate-lab")
    lab = tmp_path / "lab.yaml"
    lab.write_text(text[:start] + f"  server: {server}\n" + text[end:])
    proc = _validate(lab, "KB5070881", tmp_path / "out", env)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert field in proc.stderr and str(lab) in proc.stderr, proc.stderr


def test_an_external_wsus_needs_the_engine_s_secrets(tmp_path, env):
    text = EXAMPLE.read_text()
    start, end = text.index("secrets:\n"), text.index("install:\n")
    lab = tmp_path / "lab.yaml"
    lab.write_text(text[:start] + "secrets:\n  kind: twin\n\n" + text[end:])
    proc = _validate(lab, "KB5070881", tmp_path / "out", env)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "wsus.server" in proc.stderr and "env or vault" in proc.stderr


def test_under_pytest_xdist_the_workers_share_one_approval_and_the_last_one_undoes_it(tmp_path, state, env,
                                                                                       monkeypatch):
    with _serve(state, INCIDENT) as server:
        lab = _lab(tmp_path, server.port)
        out = tmp_path / "out"
        proc = patchgate("validate", "--lab", str(lab), "--candidate", "KB5070881", "--out", str(out), "--", "-n",
                         "2", env=env)
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
        failed = {(c["vm"], c["invariant"]) for c in json.loads((out / "gate.json").read_text())["checks"]
                  if c["status"] == "failed"}
        assert failed == {(vm, inv) for vm in ENROLLED for inv in ("wsus.offered", "hotpatch.track")}
        workers = [json.loads(p.read_text()) for p in sorted(out.glob("wsus-gw*.json"))]
        assert len(workers) == 2 and sum(w["made_here"] for w in workers) == 1, workers
        assert sorted(bool(w["undo"] and w["undo"].get("Removed") == 1) for w in workers) == [False, True], workers
        run_id = json.loads((out / "run-manifest.json").read_text())["run_id"]
        ledger = [json.loads(line) for line in (state / "runs" / f"{run_id}.jsonl").read_text().splitlines()]
        assert [e["action"] for e in ledger if e.get("external")] == ["wsus_approve", "wsus_approved",
                                                                      "wsus_unapprove"]
        groups, all_groups = _on_server(lab, "KB5070881", monkeypatch)
        assert groups == [] and GROUP not in all_groups


def test_after_a_sigkill_the_ledger_names_the_approval_and_reap_undoes_it(tmp_path, state, env, monkeypatch):
    with _serve(state, INCIDENT) as server:
        lab, proc = _start_approved_run(tmp_path, server.port, env, monkeypatch)
        kill_group(proc)
        assert _on_server(lab, "KB5070881", monkeypatch)[0] == [GROUP]  # nothing ran after SIGKILL
        dry = patchgate("reap", "--lab", str(lab), "--dry-run", env=env)
        assert dry.returncode == 0 and "would-unapprove" in dry.stdout and NAME in dry.stdout, dry.stdout + dry.stderr
        assert _on_server(lab, "KB5070881", monkeypatch)[0] == [GROUP]
        reaped = patchgate("reap", "--lab", str(lab), env=env)
        assert reaped.returncode == 0, reaped.stdout + reaped.stderr
        assert "unapproved" in reaped.stdout and "approval of KB5070881 for group patchgate-lab" in reaped.stdout
        groups, all_groups = _on_server(lab, "KB5070881", monkeypatch)
        assert groups == [] and GROUP not in all_groups
        again = patchgate("reap", "--lab", str(lab), env=env)
        assert again.returncode == 0 and "unapprove" not in again.stdout, again.stdout
