"""The lab file's control forms: `none`/`reboot` words, `{mode, vm: same|paired}`, and each VM's control_pair.

A paired control needs a pair on every VM, a pair only with a paired control, and a pair that is neither a VM of
the lab nor another VM's pair; every mistake is bad input (exit 4) naming the field and its line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchgate.config import load_lab
from patchgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


def _lab(tmp_path: Path, edit) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _paired(data: dict[str, Any]) -> None:
    data["control"] = {"mode": "reboot", "vm": "paired"}
    for vm in data["vms"]:
        vm["control_pair"] = f"{vm['name']}-ctl"


def test_the_paired_example_lab_names_a_pair_with_the_same_image_for_every_vm() -> None:
    lab = load_lab(ROOT / "labs" / "twin-paired.example.yaml")
    assert (lab.control_plan.mode, lab.control_plan.vm) == ("reboot", "paired")
    pairs = {vm.name: vm.paired() for vm in lab.vms}
    assert all(p is not None and p.name == f"{name}-ctl" for name, p in pairs.items())
    assert all((p.image, p.snapshot, p.role) == (lab.vm(n).image, lab.vm(n).snapshot, lab.vm(n).role)
               for n, p in pairs.items() if p)
    assert [vm.name for vm in lab.control_vms] == [f"{vm.name}-ctl" for vm in lab.vms]


def test_the_word_forms_mean_the_same_vm(tmp_path: Path) -> None:
    lab = load_lab(_lab(tmp_path, lambda d: d.update(control="reboot")))
    assert (lab.control_plan.mode, lab.control_plan.vm) == ("reboot", "same") and not lab.control_vms


@pytest.mark.parametrize(("edit", "field", "words"), [
    (lambda d: (_paired(d), d["vms"][2].pop("control_pair")), "vms[2]", "needs a control_pair"),
    (lambda d: d["vms"][0].update(control_pair="spare-01"), "vms[0].control_pair", "used only with"),
    (lambda d: (_paired(d), d["vms"][1].update(control_pair="ws25-hp-01")), "vms[1].control_pair", "is a VM of the lab"),
    (lambda d: (_paired(d), d["vms"][1].update(control_pair="ws25-hp-01-ctl")), "vms[1].control_pair",
     "already another VM's"),
    (lambda d: (_paired(d), d["vms"][0].update(control_pair={"name": "x", "snapshot": "s"})),
     "vms[0].control_pair.snapshot", "Extra inputs"),
    (lambda d: d.update(control={"mode": "reboot", "vm": "elsewhere"}), "control.vm", "'same' or 'paired'"),
])
def test_a_wrong_pair_is_bad_input_naming_the_field(tmp_path: Path, edit, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_lab(_lab(tmp_path, edit))
    assert caught.value.field == field and words in str(caught.value), str(caught.value)
    assert caught.value.line is not None


def test_validate_exits_4_on_a_wrong_pair(tmp_path: Path) -> None:
    lab = _lab(tmp_path, lambda d: (_paired(d), d["vms"][3].pop("control_pair")))
    done = subprocess.run([PATCHGATE, "validate", "--lab", str(lab), "--candidate", "KB5070893", "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "vms[3]" in done.stderr and "control_pair" in done.stderr
