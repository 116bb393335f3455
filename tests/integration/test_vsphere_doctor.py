"""`patchgate doctor` on a vSphere lab (govmomi's simulator on 127.0.0.1, the twin as each guest OS): the power
state comes from vSphere, a running VM is read as it is (no revert, no power change), a VM powered off in vSphere
stays off with a warning per guest check, and `--boot` reverts, starts, reads and restores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchgate.config import load_lab
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.simulator import Vcsim

from .helpers import clean_env, explain, from_example, patchgate

pytestmark = pytest.mark.slow

VM = "ws25-hp-01"
GUEST_TIMEOUTS = {"tools_timeout": 60, "heartbeat_timeout": 60, "ip_timeout": 60, "task_timeout": 120}


def _doctor(lab: Path, env: dict[str, str], *args: str) -> dict:
    proc = patchgate("doctor", "--lab", str(lab), "--vm", VM, "--json", *args, env=env)
    assert proc.returncode == 0, explain(proc)
    return {c["name"]: c for c in json.loads(proc.stdout)["vms"][VM]}


def _ledger_actions(state: Path) -> list[str]:
    return [json.loads(line).get("action") for path in sorted((state / "runs").glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def _power_off(sim: Vcsim, lab_file: Path) -> None:
    lab = load_lab(lab_file)
    hv = VsphereHypervisor(lab.hypervisor.settings, sim.credentials, lab.name)  # type: ignore[arg-type]
    hv.connect()
    try:
        ref = hv.vm_ref(lab.vm(VM))
        hv.waiter.run(lambda: ref.PowerOffVM_Task(), vm=VM, operation="power-off")
        assert hv.power_state(lab.vm(VM)) == "poweredOff"
    finally:
        hv.close()


def test_doctor_reads_vspheres_power_state_and_boots_only_when_asked(simulator: Vcsim, tmp_path: Path) -> None:
    lab = from_example("vsphere-sim.example.yaml", tmp_path / "vsphere-doctor.yaml", name="vsphere-doctor",
                       hypervisor_settings={"url": simulator.url, "ca_bundle": str(simulator.cert_path),
                                            **GUEST_TIMEOUTS})
    state = tmp_path / "state"
    env = clean_env(state, PATCHGATE_USERNAME="Administrator", PATCHGATE_PASSWORD="twin-guest-pw-1",
                    PATCHGATE_HYPERVISOR_USERNAME=simulator.username,
                    PATCHGATE_HYPERVISOR_PASSWORD=simulator.password)

    running = _doctor(lab, env)  # the simulator's VMs run: read as they are
    assert running["power state"]["status"] == "ok" and running["power state"]["detail"] == "poweredOn"
    assert running["language mode"]["status"] == "ok" and running["hotpatch enrollment"]["status"] == "ok"
    assert not {"revert", "restored", "install"} & set(_ledger_actions(state))

    _power_off(simulator, lab)
    off = _doctor(lab, env)
    assert off["power state"]["status"] == "warn" and off["power state"]["detail"] == "poweredOff"
    assert off["pending reboot"]["status"] == "warn" and "--boot" in off["pending reboot"]["advice"]
    assert "revert" not in _ledger_actions(state)

    booted = _doctor(lab, env, "--boot")
    assert booted["language mode"]["status"] == "ok" and booted["pending reboot"]["status"] == "ok", booted
    assert {"revert", "restored"} <= set(_ledger_actions(state))
