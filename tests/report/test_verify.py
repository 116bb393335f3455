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


def rehash(out: Path, *relatives: str) -> None:
    """Rewrite the evidence manifest's entries for files a forger changed, as a forger would."""
    from patchgate.evidence.hashing import sha256_file

    data = manifest(out)
    for entry in data["files"]:
        if entry["path"] in relatives:
            entry["sha256"] = sha256_file(out / entry["path"])
            entry["size"] = (out / entry["path"]).stat().st_size
    (out / "evidence-manifest.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def forge_approve(out: Path) -> None:
    gate = json.loads((out / "gate.json").read_text(encoding="utf-8"))
    gate["verdict"], gate["exit_code"] = "approve", 0
    (out / "gate.json").write_text(json.dumps(gate, indent=2), encoding="utf-8")


def test_gate_refuses_a_verdict_its_own_checks_contradict(run_copy):
    forge_approve(run_copy)
    proc = patchgate("gate", str(run_copy))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "APPROVE" not in proc.stdout
    assert "verdict 'approve' does not follow from its checks, which give 'block'" in proc.stderr
    assert "run-manifest.json: verdict 'block'" in proc.stderr and "junit.xml: patchgate.verdict block" in proc.stderr


def test_gate_of_an_untouched_run_still_gives_its_verdict(blocked_run):
    proc = patchgate("gate", str(blocked_run.out))
    assert proc.returncode == 1 and "verdict: BLOCK" in proc.stdout, proc.stdout + proc.stderr


def test_verify_fails_a_rehashed_verdict_that_the_other_outputs_contradict(run_copy):
    forge_approve(run_copy)
    rehash(run_copy, "gate.json")
    proc = patchgate("verify", str(run_copy))
    assert proc.returncode == 1, proc.stdout
    assert "CHANGED" not in proc.stdout
    assert "INVALID  gate.json: verdict 'approve' does not follow from its checks" in proc.stdout
    assert "INVALID  run-manifest.json: verdict 'block', gate.json says 'approve'" in proc.stdout


def test_verify_fails_a_run_whose_lab_signs_verdicts_when_the_signatures_are_gone(run_copy):
    run_manifest = json.loads((run_copy / "run-manifest.json").read_text(encoding="utf-8"))
    assert run_manifest["signing"] == {"required": False}
    run_manifest["signing"] = {"required": True, "key": "patchgate-verdicts", "mount": "transit"}
    (run_copy / "run-manifest.json").write_text(json.dumps(run_manifest), encoding="utf-8")
    rehash(run_copy, "run-manifest.json")
    proc = patchgate("verify", str(run_copy))
    assert proc.returncode == 1, proc.stdout
    assert "no signature (gate.json.sig, evidence-manifest.json.sig) although run-manifest.json records" in proc.stdout
    assert "transit/patchgate-verdicts" in proc.stdout


def test_verify_says_an_unsigned_run_is_unsigned(blocked_run):
    proc = patchgate("verify", str(blocked_run.out))
    assert proc.returncode == 0 and "signatures: none (unsigned run" in proc.stdout, proc.stdout


def test_the_printed_digest_catches_a_rewritten_manifest(run_copy):
    printed = patchgate("verify", str(run_copy), "--print-digest")
    assert printed.returncode == 0
    digest = printed.stdout.split()[0]
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert patchgate("verify", str(run_copy), "--digest", digest).returncode == 0
    forge_approve(run_copy)
    rehash(run_copy, "gate.json")
    proc = patchgate("verify", str(run_copy), "--digest", digest)
    assert proc.returncode == 1 and "CHANGED  evidence-manifest.json" in proc.stdout
