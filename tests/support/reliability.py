"""Lab files, runs and promise checks for the reliability tests (tests/reliability/).

Every run gets its own PATCHGATE_STATE_DIR, so its ledger, leases and twin disks are its own and can be inspected
after the `patchgate validate` subprocess ended (or was killed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    """One `patchgate validate` with its own state directory."""

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


def make_run(base: Path, name: str, lab: dict[str, Any], **env: str) -> Run:
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    environment = {**os.environ, "PATCHGATE_STATE_DIR": str(folder / "state"), **env}
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
