"""A lease contender, run in threads and in separate processes by the lease tests.

Inside its critical section a contender claims each VM with an ``O_EXCL`` marker file (a second
holder would find the marker and record a violation) and appends ``vm holder enter exit`` with
CLOCK_MONOTONIC nanoseconds (one clock for every process on the machine) so the test can also check
that no two holding intervals of one VM overlap.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from patchgate.config.lab import VaultSecretsSettings
from patchgate.leases.base import LeaseManager
from patchgate.leases.local import LocalLeaseManager


def build_manager(spec: dict[str, Any]) -> LeaseManager:
    if spec["kind"] == "local":
        return LocalLeaseManager(spec["lab"], state_dir=Path(spec["state_dir"]))
    from patchgate.leases.vault import VaultLeaseManager
    from patchgate.secrets.vault_session import VaultSession

    settings = VaultSecretsSettings(address=spec["address"], leases_path=spec["leases_path"],
                                    lease_ttl=spec.get("ttl", 60))
    return VaultLeaseManager(spec["lab"], settings, session=VaultSession(settings, token=spec["token"]))


def contend(spec: dict[str, Any], name: str, vms: list[str], rounds: int, shared: str) -> int:
    """Take ``vms`` ``rounds`` times; returns the number of critical sections completed."""
    manager = build_manager(spec)
    shared_dir = Path(shared)
    done = 0
    try:
        for round_no in range(rounds):
            order = list(vms)
            random.shuffle(order)  # callers ask in any order; the manager must sort
            lease = manager.acquire(order, f"{name}-r{round_no}", timeout=120, auto_renew=False)
            try:
                enter = time.monotonic_ns()
                claimed = []
                for vm in vms:
                    try:
                        fd = os.open(shared_dir / f"{vm}.holder", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                        os.write(fd, name.encode())
                        os.close(fd)
                        claimed.append(vm)
                    except FileExistsError:
                        _append(shared_dir / "violations.log", f"{vm} {name}\n")
                time.sleep(random.uniform(0.001, 0.004))  # hold the VMs a moment, widening any race
                for vm in claimed:
                    os.unlink(shared_dir / f"{vm}.holder")
                leave = time.monotonic_ns()
                _append(shared_dir / "intervals.log",
                        "".join(f"{vm} {name} {enter} {leave}\n" for vm in vms))
                done += 1
            finally:
                lease.release()
    finally:
        manager.close()
    return done


def _append(path: Path, text: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644)
    try:
        os.write(fd, text.encode())  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


def check_log(shared: Path) -> tuple[int, list[str]]:
    """(critical sections seen, problems): overlaps of one VM's intervals and recorded violations."""
    problems: list[str] = []
    violations = shared / "violations.log"
    if violations.exists():
        problems += [f"two holders of {line}" for line in violations.read_text().splitlines()]
    per_vm: dict[str, list[tuple[int, int, str]]] = {}
    lines = (shared / "intervals.log").read_text().splitlines() if (shared / "intervals.log").exists() else []
    for line in lines:
        vm, holder, enter, leave = line.split()
        per_vm.setdefault(vm, []).append((int(enter), int(leave), holder))
    for vm, spans in per_vm.items():
        spans.sort()
        for (_a_in, a_out, a), (b_in, _b_out, b) in zip(spans, spans[1:], strict=False):
            if b_in < a_out:
                problems.append(f"{vm}: {b} entered at {b_in} before {a} left at {a_out}")
    return len(lines), problems
