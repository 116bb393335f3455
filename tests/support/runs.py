"""Running the installed ``patchgate`` as a user does, for the tests of every folder: its environment, the call,
and what a finished ``validate`` left in its output folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))

# Left out of a child's environment: CI variables (executor.json appears only where a test asks for it) and the
# caller's Vault and credential variables (each test names its own).
_DROPPED = ("GITHUB_", "GITLAB_", "CI_", "VAULT_", "BAO_", "PATCHGATE_USERNAME", "PATCHGATE_PASSWORD",
            "PATCHGATE_HYPERVISOR_")


def clean_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``patchgate`` subprocess: its own state directory (leases, ledgers, twin disks),
    none of the variables above, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED) and k not in ("CI", "GITLAB_CI")}
    env.update({"PATCHGATE_STATE_DIR": str(state_dir), **extra})
    return env


def patchgate(*args: str, env: Mapping[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATCHGATE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None, check=False)


def group_members(pgid: int, attrs: list[str] | None = None) -> list[Any]:
    """The processes of process group ``pgid`` (psutil.Process, with ``attrs`` read into ``.info``)."""
    import psutil

    members = []
    for process in psutil.process_iter(attrs):
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def kill_group(proc: subprocess.Popen[str], *, timeout: float = 60) -> None:
    """SIGKILL a ``patchgate`` started with ``start_new_session=True``, with every process it started (no cleanup
    of any kind gets to run), and wait until all of them are gone: the suites' process and the twin's die a
    moment after the command, and a reap run before that would rightly see a live run. Nothing to do when the
    command has ended already."""
    from patchgate.run.liveness import process_alive
    from support.waiting import wait_until

    members: list[int] = []
    if proc.poll() is None:
        members = [process.pid for process in group_members(proc.pid)]
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)
    wait_until(lambda: not any(process_alive(pid) for pid in members), f"the processes of group {proc.pid} are "
               "still alive after SIGKILL", timeout=timeout)


@dataclass
class Run:
    """One finished ``patchgate validate``: its process and its output folder."""

    out: Path
    proc: subprocess.CompletedProcess[str]

    @property
    def log(self) -> str:
        return self.proc.stdout[-4000:] + self.proc.stderr[-2000:]

    @property
    def results(self) -> Path:
        return self.out / "allure-results"

    def gate(self) -> dict:
        return json.loads((self.out / "gate.json").read_text(encoding="utf-8"))

    def gate_checks(self) -> set[tuple[str, str, str]]:
        return {(c["vm"], c["invariant"], c["status"]) for c in self.gate()["checks"]}

    def junit_cases(self) -> set[tuple[str, str, str]]:
        cases = set()
        for case in ET.parse(self.out / "junit.xml").getroot().iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            cases.add((case.get("classname", ""), case.get("name", ""), outcome))
        return cases

    def allure_results(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.results.glob("*-result.json"))]

    def allure_containers(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.results.glob("*-container.json"))]


def run_validate(out: Path, state: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """``patchgate validate --out OUT ARGS`` with its own state folder; a run must always leave gate.json."""
    proc = patchgate("validate", "--out", str(out), *args, env=clean_env(state, **(env or {})), timeout=600)
    assert (out / "gate.json").is_file(), f"no gate.json:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Run(out=out, proc=proc)
