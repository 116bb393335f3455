"""A canary password given through the environment never appears in any output, also with pytest's longest
tracebacks and their locals (`-- --tb=long --showlocals`): a vCenter that refuses the password, and Windows
guests that refuse theirs (the vSphere simulator with twin guests that reject the lab's Windows credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from patchgate.hypervisors.vsphere.simulator import Vcsim

from .helpers import all_files, clean_env, explain, gate, patchgate
from .test_vsphere_validate import simulator_lab

pytestmark = pytest.mark.slow

CANARY = "Canary-7f3a9c-Pa55word!"


@pytest.mark.parametrize("refused", ["vcenter", "windows"])
def test_a_refused_password_stays_out_of_every_output(simulator: Vcsim, tmp_path: Path, refused: str) -> None:
    lab_path = simulator_lab(simulator, tmp_path / f"refused-{refused}.yaml")
    if refused == "windows":  # the guests reject the lab's Windows credentials (twin fault auth-failure)
        document = yaml.safe_load(lab_path.read_text(encoding="utf-8"))
        document["vms"] = [dict(vm, faults=["auth-failure"]) for vm in document["vms"]]
        lab_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    env = clean_env(tmp_path / "state", PATCHGATE_USERNAME="Administrator",
                    PATCHGATE_PASSWORD=CANARY if refused == "windows" else "twin-guest-pw-1",
                    PATCHGATE_HYPERVISOR_USERNAME=simulator.username,
                    PATCHGATE_HYPERVISOR_PASSWORD=CANARY if refused == "vcenter" else simulator.password)
    out = tmp_path / "out"
    run = patchgate("validate", "--lab", str(lab_path), "--candidate", "KB5070893", "--out", str(out),
                    "--vm", "ws25-mbr-01", "--", "--tb=long", "--showlocals", "-o", "log_cli=true",
                    "-o", "log_cli_level=DEBUG", env=env)
    assert run.returncode == 2, explain(run)
    assert gate(out)["verdict"] == "inconclusive"
    text = run.stdout + run.stderr
    assert "refused" in text or "401" in text or "invalid" in text.lower(), explain(run)
    assert CANARY not in text, "the canary password reached the console"
    leaked = [str(p) for p in all_files(out) if CANARY.encode() in p.read_bytes()]
    assert not leaked, leaked
