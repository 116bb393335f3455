"""Lab files, runs and promise checks for the reliability tests (tests/reliability/).

Every run gets its own PATCHGATE_STATE_DIR, so its ledger, leases and twin disks are its own and can be inspected
after the run's process ended (or was killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import yaml
from support.runs import group_members
from support.suite_runs import run_suites

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
FAULTY = "vm-f"
HEALTHY = "vm-ok"
VMS = (FAULTY, HEALTHY)


def lab_data(name: str, *, faults: list[str] | None = None, latency: dict[str, float] | None = None,
             secrets: dict[str, Any] | None = None, timeouts: dict[str, float] | None = None,
             retries: dict[str, float] | None = None) -> dict[str, Any]:
    """Two twin VMs: a WSUS server (its install of KB5070893 restarts it) carrying the faults, and a member."""
    hypervisor: dict[str, Any] = {"kind": "twin"}
    if latency:
        hypervisor["settings"] = {"latency": latency}
    return {
        "name": name,
        "hypervisor": hypervisor,
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never",
                                                  "connect_timeout": 5, "read_timeout": 30,
                                                  "operation_timeout": 20}},
        "secrets": secrets or {"kind": "twin"},
        "vms": [{"name": FAULTY, "role": "wsus-server", "snapshot": "baseline", "ring": "ring0",
                 "image": "ws2025-dc-wsus-oct2025", "faults": list(faults or [])},
                {"name": HEALTHY, "role": "member", "snapshot": "baseline", "ring": "ring1",
                 "image": "ws2025-std-member-oct2025"}],
        "timeouts": {"ready": 3, "install": 3, "stage": 3, "reboot": 3, "capture": 20, **(timeouts or {})},
        "retries": {"count": 1, "backoff": 0, **(retries or {})},
    }


@dataclass
class Run:
    """One run of the gate (`patchgate validate`, or the suites it starts) with its own state directory."""

    name: str
    folder: Path
    env: dict[str, str]

    @property
    def lab_file(self) -> Path:
        return self.folder / "lab.yaml"

    @property
    def state(self) -> Path:
        return self.folder / "state"

    @property
    def out(self) -> Path:
        return self.folder / "out"

    @property
    def lab_name(self) -> str:
        return yaml.safe_load(self.lab_file.read_text())["name"]

    def gate(self) -> dict[str, Any]:
        return json.loads((self.out / "gate.json").read_text())

    def command(self, *pytest_args: str, candidate: str = "KB5070893") -> list[str]:
        cmd = [PATCHGATE, "validate", "--lab", str(self.lab_file), "--candidate", candidate, "--out", str(self.out)]
        return cmd + (["--", *pytest_args] if pytest_args else [])

    def suites(self, *pytest_args: str, candidate: str = "KB5070893") -> subprocess.CompletedProcess[str]:
        """The run as plain ``pytest suites --lab ... --candidate ...`` (support.suite_runs: a process forked from
        a warm one), its output as stdout: the same gate, verdict and exit code as `patchgate validate`, whose own
        lines tests/e2e checks."""
        finished = run_suites(self.lab_file, ROOT / "candidates" / f"{candidate}.yaml", self.out, self.env,
                              extra=list(pytest_args))
        return subprocess.CompletedProcess(["pytest", "suites"], finished.returncode, finished.output, "")

    def patchgate(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PATCHGATE, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ledger(self):
        from patchgate.run.ledger import read_ledger

        paths = sorted((self.state / "runs").glob("*.jsonl"))
        assert len(paths) == 1, paths
        return read_ledger(paths[0])

    def leases(self) -> list:
        from patchgate.leases.local import LocalLeaseManager

        return LocalLeaseManager(self.lab_name, state_dir=self.state).list_leases()

    def at_snapshot(self, vm: str) -> bool:
        from patchgate_twin.lab import TwinDisks

        return TwinDisks(self.lab_name, folder=self.state / "twin" / self.lab_name).at_snapshot(vm)

    def disk_exists(self, vm: str) -> bool:
        return (self.state / "twin" / self.lab_name / f"{vm}.pickle").is_file()


@contextlib.contextmanager
def validate_in_own_group(run: "Run") -> Iterator["subprocess.Popen[str]"]:
    """`patchgate validate` in a process group of its own (a terminal's Ctrl-C goes to the whole group), its
    output merged on one pipe; whatever the test does, the group is killed if it is still there at the end."""
    proc = subprocess.Popen(run.command(), cwd=ROOT, env=run.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def communicate_or_explain(proc: "subprocess.Popen[str]", timeout: float) -> str:
    """The output of a process started by :func:`validate_in_own_group` once it ends; if it is still running
    after ``timeout`` seconds, an AssertionError that says which processes of its group are left and where each
    one's threads are (they dump them on SIGABRT: ``make_run`` enables faulthandler), so a rare hang in CI
    explains itself."""
    import psutil

    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        pass
    left = group_members(proc.pid, ["pid", "ppid", "status", "cmdline"])
    listing = "\n".join(f"  pid {m.pid} (parent {m.info['ppid']}, {m.info['status']}): "
                         f"{' '.join(m.info['cmdline'] or [])[:200]}" for m in left)
    for member in left:
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            member.send_signal(signal.SIGABRT)
    try:
        output = proc.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate(timeout=15)[0]
    raise AssertionError(f"still running {timeout:g}s later; the processes of its group:\n{listing}\n"
                         f"--- output, with their threads' stacks ---\n{output[-12000:]}")


def make_run(base: Path, name: str, lab: dict[str, Any], **env: str) -> Run:
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    environment = {**os.environ, "PATCHGATE_STATE_DIR": str(folder / "state"), "PYTHONFAULTHANDLER": "1", **env}
    environment.pop("PYTEST_XDIST_WORKER", None)
    return Run(name, folder, environment)


def broken_checks(gate: dict[str, Any], vm: str) -> list[dict[str, Any]]:
    return [c for c in gate["checks"] if c["status"] == "broken" and c["vm"] == vm]


def allure_broken_vms(out: Path) -> set[str]:
    vms: set[str] = set()
    for path in (out / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text())
        if result.get("status") == "broken":
            vms.update(label["value"] for label in result.get("labels", []) if label.get("name") == "vm")
    return vms


def hyperv_lab_data(name: str, *, faults: list[str] | None = None, psdirect: bool = False) -> dict[str, Any]:
    """lab_data's two VMs on a twin Hyper-V host (hypervisor.kind hyperv, guests: twin); ``psdirect``: the guests
    are reached with PowerShell Direct through the host."""
    lab = lab_data(name, faults=faults)
    lab["hypervisor"] = {"kind": "hyperv", "settings": {"host": "hv-01", "guests": "twin", "poll_interval": 0.2}}
    if psdirect:
        lab["remoting"] = {"kind": "psdirect", "settings": {"host": lab["remoting"]["settings"]}}
    return lab


def keeps_every_promise(run: Run, proc: subprocess.CompletedProcess[str], step: str, *, touched: bool = True,
                        worker_died: bool = False, ledger_written: bool = True, named: str = FAULTY) -> None:
    """The fault matrix's four promises for one run whose faulty VM broke at ``step`` (tests/reliability).

    ``touched``: the healthy VM was taken through its lifecycle (false when its lease was never taken);
    ``ledger_written``: the run got as far as its ledger (false when the hypervisor was unreachable at start);
    ``named``: what the broken checks' messages name (the faulty VM, or the host that failed them all)."""
    context = f"\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-3000:]}"

    # 1. inconclusive, never approve; the failing VM and step are named in gate.json and in Allure
    assert proc.returncode == 2, context
    gate = run.gate()
    assert gate["verdict"] == "inconclusive", context
    broken = broken_checks(gate, FAULTY)
    assert broken, f"no broken check names {FAULTY}" + context
    steps = {c.get("step") for c in broken}
    assert step in steps, f"steps {steps}" + context
    assert any(step in c["message"] and named in c["message"] for c in broken), broken[0]
    assert FAULTY in allure_broken_vms(run.out), "no Allure result with status broken for the faulty VM"
    categories = json.loads((run.out / "allure-results" / "categories.json").read_text())
    assert any("broken" in c.get("matchedStatuses", []) and "Lab trouble" in c["name"] for c in categories)
    assert FAULTY in proc.stdout and "INCONCLUSIVE" in proc.stdout

    # 2. every VM is back at its snapshot, and the ledger has nothing left dirty
    for vm in VMS:
        assert run.at_snapshot(vm), f"{vm}'s twin disk is not at its snapshot" + context
    if ledger_written:
        ledger = run.ledger()
        assert ledger.dirty_vms == {}, ledger.dirty_vms
        assert not ledger.alive  # every process of the run finished (a dead worker counts as finished)
    else:
        assert not list((run.state / "runs").glob("*.jsonl")), "a run that never started wrote a ledger"
    if touched:  # a VM whose lease was never taken was never touched
        assert run.disk_exists(HEALTHY)

    # 3. every lease released
    assert run.leases() == [], run.leases()

    # 4. every output written, and the evidence manifest verifies
    for name in ("gate.json", "junit.xml", "run-manifest.json", "evidence-manifest.json"):
        assert (run.out / name).is_file(), name
    assert any((run.out / "allure-results").glob("*-result.json"))
    assert {p.stem for p in (run.out / "vms").glob("*.json")} >= ({FAULTY} if worker_died else set())
    verify = run.patchgate("verify", str(run.out))
    assert verify.returncode == 0, verify.stdout + verify.stderr
