"""The verdict lines ``validate`` and ``gate`` print: failures, lab trouble, kept VMs, expired waivers, signature."""

from __future__ import annotations

from pathlib import Path

from patchgate.errors import ConfigError
from patchgate.labkinds import lab_kind


def print_verdict(gate: dict, gate_file: Path) -> None:
    shown = gate["verdict"].upper() + (" (partial)" if gate.get("partial") else "")
    print(f"\nverdict: {shown} for {gate['candidate']['kb']} on lab {gate['lab']['name']}: {gate['reason']}")
    shown: dict[tuple[str, str, str], list[str]] = {}
    for check in gate["checks"]:
        if check["status"] in ("failed", "broken", "waived"):
            headline = (check.get("message") or "").splitlines()[0] if check.get("message") else ""
            # lab trouble repeats one message per check of the VM: show it once with the invariants it broke
            key = (check["status"], check["vm"], headline if check["status"] == "broken" else check["invariant"])
            shown.setdefault(key, []).append(check["invariant"] if check["status"] == "broken" else headline)
    for (status, vm, what), details in shown.items():
        if status == "broken":
            print(f"  BROKEN  {vm:<16} {len(details)} check(s): {what}")
        else:
            print(f"  {status.upper():7} {vm:<16} {what:<32} {details[0]}")
    for vm in gate.get("vms", []):
        if vm.get("kept"):
            print(f"  KEPT    {vm['name']:<16} {_how_to_reach(gate, vm)}; restore it with: patchgate reap --lab "
                  f"{gate['lab'].get('file') or gate['lab']['name']}")
    for waiver in gate.get("waivers_expired", []):
        scope = ", ".join(waiver.get("vms", []) + waiver.get("roles", []))
        print(f"  EXPIRED waiver for {waiver['invariant']} on {scope} by {waiver['owner']}: expired on "
              f"{waiver['expires']}, no longer applies")
    from patchgate.evidence.signing_status import signing_status

    print(f"signature: {signing_status(gate_file.parent).text}")
    print(f"gate file: {gate_file}")


def _how_to_reach(gate: dict, vm: dict) -> str:
    """Where a VM left as it is (--keep-on-failure) can be looked at: the lab kind's words when it has some (a
    simulated VM has no address to reach), else its endpoint's."""
    hint = _kind_hint(gate["lab"].get("hypervisor"), vm)
    if hint:
        return hint
    endpoint = vm.get("endpoint") or {}
    where = endpoint.get("hostname") or endpoint.get("address")
    port = f":{endpoint['port']}" if endpoint.get("port") else ""
    return f"left changed (not restored), reach it at {where}{port}" if where else \
        "left changed (not restored), find it in the hypervisor by its name"


def _kind_hint(kind: str | None, vm: dict) -> str | None:
    """What the lab's kind says of a kept VM; a run folder read where that kind is not installed has none."""
    if not kind:
        return None
    try:
        return lab_kind(kind).kept_vm_hint(vm)
    except ConfigError:
        return None
