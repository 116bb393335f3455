"""Lease safety under waits longer than the TTL, on one real OpenBao.

* Eight lab runs (separate processes) of overlapping VM sets, a `lease_ttl` of 6 s and twin latency so that runs
  wait for each other far longer than the TTL: from every run's stays (recorded inside its lifecycle) and Vault's
  version history of every lease, no VM is touched by two runs at once, no lease changes hands without being
  released, and every stay of a run lies inside its own unexpired lease.
* A run whose lease is taken from it mid-run stops touching that VM and is inconclusive, naming the VM and why.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.contenders import check_log
from support.openbao import OpenBao
from support.waiting import wait_until

from .helpers import clean_env, explain, gate, patchgate, write_lab
from .test_lease_contention import RECORDING, SELECTIONS
from .vaultlab import KV_MOUNT, VaultLab

pytestmark = pytest.mark.slow

TTL = 6
# a lifecycle of about 3 s: the runs queue behind each other for several TTLs (the test asserts it)
LATENCY = {"revert": 0.5, "boot": 0.5, "install": 1.0, "reboot": 0.5, "wsman_round_trip": 0}
RUN_TIMEOUT = 300.0
EDGE = 0.05  # seconds: Vault stamps a version while it handles the write; the stays are stamped around it


def _short_ttl_secrets(vault_lab: VaultLab) -> dict[str, Any]:
    section = vault_lab.secrets_section(auth="token", leases=True, signing=False)
    section["settings"]["lease_ttl"] = TTL
    return section


def _history(kv: Any, path: str) -> list[tuple[float, dict[str, Any]]]:
    """Every version of one lease record: (Vault's created_time, record), oldest first."""
    meta = kv.read_secret_metadata(path, mount_point=KV_MOUNT)["data"]
    versions = []
    for number in sorted(int(v) for v in meta["versions"]):
        stamp = dt.datetime.fromisoformat(meta["versions"][str(number)]["created_time"].replace("Z", "+00:00"))
        data = kv.read_secret_version(path, version=number, mount_point=KV_MOUNT,
                                      raise_on_deleted_version=True)["data"]["data"]
        versions.append((stamp.timestamp(), data))
    return versions


def _tenures(history: list[tuple[float, dict[str, Any]]]) -> tuple[dict[str, list[tuple[float, float]]],
                                                                     list[str]]:
    """Each run's tenures of one VM from its version history, and every handover that was not a release."""
    tenures: dict[str, list[tuple[float, float]]] = {}
    problems: list[str] = []
    holder: str | None = None
    since = 0.0
    for stamp, record in history:
        run, held = record.get("run_id"), record.get("state") == "held"
        if holder is not None and run != holder:
            problems.append(f"{run} took the lease from {holder} at {stamp:.3f} without a release")
            tenures.setdefault(holder, []).append((since, stamp))
            holder = None
        if held and holder is None:
            holder, since = run, stamp
        elif not held and holder == run:
            tenures.setdefault(run, []).append((since, stamp))
            holder = None
    if holder is not None:
        problems.append(f"{holder} never released its lease")
    return tenures, problems


def test_eight_runs_with_waits_longer_than_the_ttl_never_share_a_vm(vault_lab: VaultLab, openbao: OpenBao,
                                                                    tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    lab_path = write_lab(tmp_path / "short-ttl.yaml", name="short-ttl",
                         hypervisor={"kind": "twin", "settings": {"latency": LATENCY}},
                         remoting={"kind": "inprocess"}, secrets=_short_ttl_secrets(vault_lab),
                         timeouts={"ready": RUN_TIMEOUT, "install": 600, "reboot": 120, "capture": 60})
    kv = openbao.client().secrets.kv.v2
    vms = sorted({vm for selection in SELECTIONS for vm in selection})
    for vm in vms:  # keep every version: the default of 10 would drop the history this test reads
        kv.update_metadata(f"{vault_lab.leases_path}/short-ttl/{vm}", max_versions=1000, mount_point=KV_MOUNT)
    env = clean_env(tmp_path / "state", **vault_lab.env("token"))
    procs: list[subprocess.Popen[str]] = []
    try:
        for number, selection in enumerate(SELECTIONS):
            spec = {"lab": str(lab_path), "candidate": "KB5070893", "run_id": f"short-{number}", "vms": selection,
                    "shared": str(shared)}
            procs.append(subprocess.Popen([sys.executable, str(RECORDING), json.dumps(spec)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        def all_ready() -> bool:
            exited = [p for p in procs if p.poll() is not None]
            assert not exited, f"a contender exited before the start: {exited[0].communicate()}"
            return len(list(shared.glob("ready-*"))) >= len(procs)

        wait_until(all_ready, "contenders did not get ready", timeout=120)
        started = time.time()
        (shared / "go").touch()
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
            assert proc.returncode == 0, explain(subprocess.CompletedProcess(proc.args, proc.returncode, stdout,
                                                                               stderr))
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        elapsed = time.time() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    assert elapsed > 2 * TTL, f"the runs did not wait for each other long enough to test expiry ({elapsed:.1f}s)"
    for selection, result in zip(SELECTIONS, results, strict=True):
        assert sorted(result) == sorted(selection)
        for vm, outcome in result.items():
            assert outcome["error"] is None, f"{vm}: {outcome['error']}"
            assert outcome["restored"], outcome
    stays, problems = check_log(shared)
    assert not problems, "\n".join(problems)
    assert stays == sum(len(selection) for selection in SELECTIONS)

    walls: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line in (shared / "walls.log").read_text().splitlines():
        vm, run, enter, leave = line.split()
        walls.setdefault((vm, run), []).append((float(enter), float(leave)))
    outside: list[str] = []
    for vm in vms:
        tenures, handovers = _tenures(_history(kv, f"{vault_lab.leases_path}/short-ttl/{vm}"))
        assert not handovers, f"{vm}: " + "; ".join(handovers)
        for (stay_vm, run), spans in walls.items():
            if stay_vm != vm:
                continue
            for enter, leave in spans:
                if not any(start - EDGE <= enter and leave <= end + EDGE for start, end in tenures.get(run, [])):
                    outside.append(f"{run} touched {vm} from {enter:.3f} to {leave:.3f} outside its lease "
                                   f"{tenures.get(run)}")
    assert not outside, "\n".join(outside)


def test_a_run_that_loses_a_lease_stops_touching_the_vm_and_is_inconclusive(vault_lab: VaultLab,
                                                                             openbao: OpenBao,
                                                                             tmp_path: Path) -> None:
    """While the run installs (4 s of twin latency), another party takes the lease of ws25-mbr-01 over (a new
    version in Vault, as a takeover after an expiry writes): the run must not reboot, sync or restore that VM,
    and its verdict is inconclusive, naming the VM and the lease."""
    lab_path = write_lab(tmp_path / "stolen.yaml", name="stolen",
                         hypervisor={"kind": "twin", "settings": {"latency": {**LATENCY, "install": 4.0}}},
                         secrets=_short_ttl_secrets(vault_lab))
    env = clean_env(tmp_path / "state", **vault_lab.env("token"))
    kv = openbao.client().secrets.kv.v2
    path = f"{vault_lab.leases_path}/stolen/ws25-mbr-01"
    stolen_at: list[float] = []

    def steal() -> None:
        """Once the run's ledger says ws25-mbr-01's install started, write a new lease version for another run."""
        runs = tmp_path / "state" / "runs"

        def installing() -> bool:  # the run writes its ledger, nothing signals us
            ledgers = list(runs.glob("*.jsonl")) if runs.is_dir() else []
            return any('"install"' in line and "ws25-mbr-01" in line
                       for ledger in ledgers for line in ledger.read_text(encoding="utf-8").splitlines())

        try:
            wait_until(installing, "the run never started ws25-mbr-01's install", timeout=120, interval=0.02)
        except AssertionError:
            return  # the test says so: the lease was never taken over
        current = kv.read_secret_version(path, mount_point=KV_MOUNT, raise_on_deleted_version=True)["data"]
        kv.create_or_update_secret(path, {**current["data"], "run_id": "run-that-took-over",
                                          "expires": time.time() + 600},
                                   cas=int(current["metadata"]["version"]), mount_point=KV_MOUNT)
        stolen_at.append(time.time())

    thief = threading.Thread(target=steal, daemon=True)
    thief.start()
    out = tmp_path / "out"
    run = patchgate("validate", "--lab", str(lab_path), "--candidate", "KB5070893", "--out", str(out), env=env)
    thief.join(timeout=30)
    assert stolen_at, "the lease was never taken over during the run"
    assert run.returncode == 2, explain(run)
    result = gate(out)
    assert result["verdict"] == "inconclusive"
    lease_checks = [c for c in result["checks"] if c["invariant"] == "lab.lease"]
    assert [c["vm"] for c in lease_checks] == ["ws25-mbr-01"], result["checks"]
    assert "run-that-took-over" in lease_checks[0]["message"]
    summary = json.loads((out / "vms" / "ws25-mbr-01.json").read_text(encoding="utf-8"))
    assert not summary["restored"] and "not restored" in (summary["restore_error"] or "")
    assert "lease lost" in (summary["error"] or "") + (summary["lease_lost"] or "")
    touched_after = [s for s in summary["steps"] if s["name"] in ("reboot", "wsus_sync", "restore")
                     and s.get("ok", True)]
    assert not touched_after, touched_after
    assert "ws25-mbr-01" in run.stdout and "lease" in run.stdout
    others = [json.loads((out / "vms" / f"{vm}.json").read_text(encoding="utf-8"))
              for vm in ("ws25-hp-01", "ws25-az-01", "ws25-wsus-01")]
    assert all(vm["restored"] and not vm["lease_lost"] for vm in others)
    record = kv.read_secret_version(path, mount_point=KV_MOUNT, raise_on_deleted_version=True)["data"]["data"]
    assert record["run_id"] == "run-that-took-over"  # the run left the new holder's lease alone
