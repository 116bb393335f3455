"""The twin's side of Add-WindowsPackage: single packages and checkpoint folders, as DISM installs them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from patchgate.config import load_lab
from patchgate.remoting.staging import REFUSED_HASH, op_script
from patchgate_twin import filecopy
from patchgate_twin.lab import build_twin_lab
from patchgate_twin.shell import Statement
from patchgate_twin.shell_impl import TwinShell

ROOT = Path(__file__).resolve().parents[2]

CHECKPOINT = """
behaviours:
  - kb: KB5043080
    title: Checkpoint cumulative update for Windows Server 2025 (26100.1742)
    classification: baseline
    build: "26100.1742"
    released: 2024-09-10
    restart: always
    applies_to: {}
    effects:
      - {add_hotfix: {hotfix_id: KB5043080, description: Update}}
    sources: [https://learn.microsoft.com/windows/deployment/update/catalog-checkpoint-cumulative-updates]
"""


def _ready_shell(tmp_path: Path) -> tuple[TwinShell, str]:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "checkpoint.yaml").write_text(CHECKPOINT)
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    twin = build_twin_lab(lab, [tmp_path], durable=False)
    vm = "ws25-hp-01"
    twin.revert(vm)
    twin.power_on(vm)
    return TwinShell(twin), vm


def _install(shell: TwinShell, vm: str, path: str, expected: dict[str, str]):
    script = op_script("install", PackagePath=path, Sha256=expected)
    return shell.run_pipeline(vm, [Statement(script.body, dict(script.parameters))], [])


def _stage(shell: TwinShell, vm: str, path: str, kb: str) -> dict[str, str]:
    """Put a stand-in package on the VM; returns {file name: sha256}, what the install op is told to expect."""
    data = f"stand-in\nkb: {kb}\n".encode()
    shell.lab.files(vm).write_bytes(filecopy.key(path), data)
    return {path.rsplit("\\", 1)[-1]: hashlib.sha256(data).hexdigest()}


def test_single_package_installs_its_kb(tmp_path):
    shell, vm = _ready_shell(tmp_path)
    expected = _stage(shell, vm, r"C:\ProgramData\patchgate\staging\KB5070893\a.msu", "KB5070893")
    result = _install(shell, vm, r"C:\ProgramData\patchgate\staging\KB5070893\a.msu", expected)
    assert not result.errors
    document = json.loads(result.output[0])
    assert document["RestartNeeded"] is False  # no WSUS role on this image
    assert document["Staged"] == [{"Path": r"C:\ProgramData\patchgate\staging\KB5070893\a.msu",
                                   "Sha256": expected["a.msu"].upper()}]
    assert shell.lab.host(vm).has_kb("KB5070893")


def test_a_staged_file_that_is_not_the_approved_one_is_not_installed(tmp_path):
    shell, vm = _ready_shell(tmp_path)
    path = r"C:\ProgramData\patchgate\staging\KB5070893\a.msu"
    expected = _stage(shell, vm, path, "KB5070893")
    files = shell.lab.files(vm)
    files.write_bytes(filecopy.key(path), files.read_bytes(filecopy.key(path)) + b"changed after the copy")
    result = _install(shell, vm, path, expected)
    document = json.loads(result.output[0])
    assert document["ExitCode"] == REFUSED_HASH and document["RestartNeeded"] is False
    assert document["Staged"][0]["Sha256"] != expected["a.msu"].upper()
    assert not shell.lab.host(vm).has_kb("KB5070893")


def test_folder_installs_every_package_in_name_order(tmp_path):
    shell, vm = _ready_shell(tmp_path)
    folder = r"C:\ProgramData\patchgate\staging\KB5073379"
    host = shell.lab.host(vm)
    host.hotfixes = [h for h in host.hotfixes if h.hotfix_id != "KB5043080"]  # as if the checkpoint were missing
    expected = _stage(shell, vm, folder + r"\1-windows11.0-kb5043080-x64.msu", "KB5043080")
    expected |= _stage(shell, vm, folder + r"\2-windows11.0-kb5073379-x64.msu", "KB5073379")
    _stage(shell, vm, folder + r"\nested\3-other.msu", "KB5068966")  # not directly in the folder: ignored
    result = _install(shell, vm, folder, expected)
    assert not result.errors, result.errors
    assert json.loads(result.output[0])["RestartNeeded"] is True
    assert host.has_kb("KB5043080")
    assert not host.has_kb("KB5068966")


def test_a_missing_package_is_refused_naming_the_path(tmp_path):
    shell, vm = _ready_shell(tmp_path)
    result = _install(shell, vm, r"C:\nowhere\x.msu", {"x.msu": "ab" * 32})
    document = json.loads(result.output[0])
    assert document["ExitCode"] == REFUSED_HASH
    assert document["Staged"] == [{"Path": r"C:\nowhere\x.msu", "Sha256": None}]


def test_a_package_path_with_nothing_to_install_is_an_error_naming_it(tmp_path):
    shell, vm = _ready_shell(tmp_path)
    result = _install(shell, vm, r"C:\nowhere\x.msu", {})
    assert result.failed and r"C:\nowhere\x.msu" in result.errors[0]


def test_twin_command_lists_images_and_behaviours(capsys):
    from patchgate.cli import main

    assert main(["twin"]) == 0
    out = capsys.readouterr().out
    assert "ws2025-dc-hotpatch-oct2025" in out and "hotpatch-member" in out
    assert "KB5070881" in out and "KB5070893" in out
