"""`patchgate verify` passes on a fresh run and names each changed, missing and extra file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from report.runs import patchgate

pytestmark = pytest.mark.slow


def manifest(out: Path) -> dict:
    return json.loads((out / "evidence-manifest.json").read_text(encoding="utf-8"))


def test_manifest_lists_every_output(blocked_run):
    paths = {f["path"] for f in manifest(blocked_run.out)["files"]}
    for expected in ("gate.json", "junit.xml", "run-manifest.json", "vms/ws25-hp-01.json",
                     "allure-results/environment.properties", "allure-results/categories.json"):
        assert expected in paths
    on_disk = {p.relative_to(blocked_run.results).as_posix() for p in blocked_run.results.iterdir()}
    assert {f"allure-results/{p}" for p in on_disk} <= paths
    assert any(p.endswith("-attachment.html") for p in paths)


def test_fresh_run_verifies(blocked_run):
    proc = patchgate("verify", str(blocked_run.out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_one_changed_byte_of_an_attachment_fails(run_copy):
    attachment = next(iter(sorted((run_copy / "allure-results").glob("*-attachment.json"))))
    data = bytearray(attachment.read_bytes())
    data[len(data) // 2] ^= 0x01
    attachment.write_bytes(bytes(data))
    proc = patchgate("verify", str(run_copy))
    assert proc.returncode == 1
    assert f"CHANGED  allure-results/{attachment.name}" in proc.stdout


def test_a_removed_file_fails(run_copy):
    (run_copy / "vms" / "ws25-wsus-01.json").unlink()
    proc = patchgate("verify", str(run_copy))
    assert proc.returncode == 1
    assert "MISSING  vms/ws25-wsus-01.json" in proc.stdout


def test_an_added_file_fails(run_copy):
    (run_copy / "allure-results" / "forged-result.json").write_text("{}", encoding="utf-8")
    proc = patchgate("verify", str(run_copy))
    assert proc.returncode == 1
    assert "EXTRA    allure-results/forged-result.json" in proc.stdout


def test_a_changed_verdict_fails(run_copy):
    gate = run_copy / "gate.json"
    gate.write_text(gate.read_text(encoding="utf-8").replace('"verdict": "block"', '"verdict": "approve"'),
                    encoding="utf-8")
    proc = patchgate("verify", str(run_copy))
    assert proc.returncode == 1 and "CHANGED  gate.json" in proc.stdout


def test_a_folder_without_manifest_is_a_usage_error(tmp_path):
    proc = patchgate("verify", str(tmp_path))
    assert proc.returncode == 4
    assert "evidence-manifest.json" in proc.stderr and str(tmp_path) in proc.stderr
