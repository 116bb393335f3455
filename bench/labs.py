"""Lab files for the benchmarks: N twin VMs over real WSMan endpoints, with lab-like latencies.

The generated labs cycle through the shipped twin images and roles so a run has hotpatch members, a WSUS server
and plain members, exactly like labs/twin.yaml, only more of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# (role, image) of labs/twin.yaml, cycled to make bigger labs
VM_KINDS: tuple[tuple[str, str, str], ...] = (
    ("hp", "hotpatch-member", "ws2025-dc-hotpatch-oct2025"),
    ("az", "hotpatch-member", "ws2025-azure-edition-oct2025"),
    ("wsus", "wsus-server", "ws2025-dc-wsus-oct2025"),
    ("mbr", "member", "ws2025-std-member-oct2025"),
)

# Lab latencies (seconds), a real vSphere lab's scaled down about tenfold so a bench takes minutes, not hours: a
# snapshot revert 6 s, a boot to WinRM 12 s, an LCU install 60 s, its restart 18 s, a 20 ms WSMan round trip.
SCALED_LATENCY: dict[str, float] = {"revert": 6.0, "boot": 12.0, "install": 60.0, "reboot": 18.0,
                                    "wsman_round_trip": 0.02}


def lab_document(name: str, vm_count: int, *, latency: dict[str, float] | None = None,
                 kinds: tuple[tuple[str, str, str], ...] = VM_KINDS) -> dict[str, Any]:
    """A twin lab with ``vm_count`` VMs whose limits let every VM run at once (the bench measures the harness,
    not a throttled hypervisor)."""
    vms = []
    for index in range(vm_count):
        short, role, image = kinds[index % len(kinds)]
        vms.append({"name": f"bench-{short}-{index + 1:02d}", "role": role, "snapshot": "baseline-2025-10",
                    "ring": "ring0", "image": image})
    return {
        "name": name,
        "description": f"benchmark lab: {vm_count} twin VMs",
        "hypervisor": {"kind": "twin", "settings": {"latency": dict(latency or {})}},
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never",
                                                  "connect_timeout": 10, "read_timeout": 60,
                                                  "operation_timeout": 20}},
        "secrets": {"kind": "twin"},
        "vms": vms,
        "limits": {"total": max(1, vm_count), "revert": max(1, vm_count), "install": max(1, vm_count),
                   "capture": max(1, vm_count)},
        "timeouts": {"ready": 120, "install": 600, "reboot": 120, "capture": 120},
        "retries": {"count": 1, "backoff": 0.5},
        "policy": {"allow": {"kbs": [], "firewall_rule_groups": [], "services": []}, "waivers": []},
    }


def write_lab(folder: Path, name: str, vm_count: int, **kwargs: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(lab_document(name, vm_count, **kwargs), sort_keys=False), encoding="utf-8")
    return path
