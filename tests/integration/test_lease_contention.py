"""Issue 6: eight lab runs (separate processes) contend for the same four VMs, with Vault leases and with
local leases. The holders are recorded from inside each run's VM lifecycle (recording.py): never two
holders of one VM at any time, and every VM released at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.contenders import check_log
from support.waiting import wait_until

from patchgate.config import load_lab
from patchgate.leases import build_lease_manager
from patchgate.leases.local import LocalLeaseManager

from .helpers import clean_env, explain, patchgate, write_lab
from .vaultlab import VaultLab

pytestmark = pytest.mark.slow

RECORDING = Path(__file__).with_name("recording.py")
HP, AZ, WSUS, MBR = "ws25-hp-01", "ws25-az-01", "ws25-wsus-01", "ws25-mbr-01"
# overlapping selections: every pair of VMs is wanted together by some run, and two runs want all four
SELECTIONS = [[HP, AZ, WSUS, MBR], [HP, AZ], [AZ, WSUS], [WSUS, MBR], [MBR, HP, WSUS, AZ], [MBR, HP],
              [HP, WSUS], [AZ, MBR]]
START_TIMEOUT = 120.0
RUN_TIMEOUT = 300.0


def _secrets(backend: str, vault_lab: VaultLab) -> dict:
    if backend == "local":
        return {"kind": "twin"}
    return vault_lab.secrets_section(auth="token", leases=True, signing=False)


@pytest.mark.parametrize("backend", ["local", "vault"])
def test_eight_runs_never_hold_one_vm_together(backend: str, vault_lab: VaultLab, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    lab_path = write_lab(tmp_path / "contended.yaml", name="contended", hypervisor={"kind": "twin"},
                         remoting={"kind": "inprocess"}, secrets=_secrets(backend, vault_lab),
                         timeouts={"ready": RUN_TIMEOUT, "install": 600, "reboot": 120, "capture": 60})
    env = clean_env(tmp_path / "state", **(vault_lab.env("token") if backend == "vault" else {}))
    procs: list[subprocess.Popen[str]] = []
    try:
        for number, vms in enumerate(SELECTIONS):
            spec = {"lab": str(lab_path), "candidate": "KB5070893", "run_id": f"contender-{number}",
                    "vms": vms, "shared": str(shared)}
            procs.append(subprocess.Popen([sys.executable, str(RECORDING), json.dumps(spec)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        def all_ready() -> bool:
            exited = [p for p in procs if p.poll() is not None]
            assert not exited, f"a contender exited before the start: {exited[0].communicate()}"
            return len(list(shared.glob("ready-*"))) >= len(procs)

        wait_until(all_ready, "contenders did not get ready", timeout=START_TIMEOUT)
        (shared / "go").touch()
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
            assert proc.returncode == 0, explain(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                                               stdout, stderr))
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    # every run did its work on every VM it asked for, and restored it
    for vms, result in zip(SELECTIONS, results, strict=True):
        assert sorted(result) == sorted(vms)
        for vm, outcome in result.items():
            assert outcome["error"] is None, f"{vm}: {outcome['error']}"
            assert outcome["restored"] and "capture_post" in outcome["steps"], outcome

    stays, problems = check_log(shared)
    assert not problems, "\n".join(problems)
    assert stays == sum(len(vms) for vms in SELECTIONS)  # every stay of every run was recorded
    assert not list(shared.glob("*.holder"))

    # every VM released: the manager and `patchgate leases --lab` agree
    lab = load_lab(lab_path)
    if backend == "local":
        manager = LocalLeaseManager(lab.name, state_dir=tmp_path / "state")
    else:
        from patchgate.secrets.vault_session import VaultSession

        manager = build_lease_manager(lab, session=VaultSession(lab.secrets.settings,  # type: ignore[arg-type]
                                                                token=vault_lab.token, renew=False))
    try:
        assert manager.kind == backend and manager.list_leases() == []
    finally:
        manager.close()
        if backend == "vault":
            manager.session.close()  # type: ignore[attr-defined]
    listed = patchgate("leases", "--lab", str(lab_path), env=env)
    assert listed.returncode == 0, explain(listed)
    assert f"No VM leases held in lab contended ({backend})" in listed.stdout


def test_leases_command_lists_local_leases(tmp_path: Path) -> None:
    lab_path = write_lab(tmp_path / "local.yaml", name="local-leases", hypervisor={"kind": "twin"},
                         remoting={"kind": "inprocess"}, secrets={"kind": "twin"})
    env = clean_env(tmp_path / "state")
    manager = LocalLeaseManager("local-leases", state_dir=tmp_path / "state")
    try:
        with manager.acquire([WSUS, MBR], "it-local-run", timeout=5, auto_renew=False):
            held = patchgate("leases", "--lab", str(lab_path), env=env)
            assert held.returncode == 0, explain(held)
            rows = [line.split() for line in held.stdout.splitlines() if "it-local-run" in line]
            assert sorted(row[0] for row in rows) == [MBR, WSUS] and all(r[1] == "held" for r in rows), held.stdout
    finally:
        manager.close()
    free = patchgate("leases", "--lab", str(lab_path), env=env)
    assert "No VM leases held in lab local-leases (local)" in free.stdout, explain(free)
