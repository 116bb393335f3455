"""The signing glue the evidence hooks and `patchgate verify` call: sign_run(out_dir, lab) and
verify_run(out_dir, public_key=None, lab=None), on a small run folder and a real OpenBao transit key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.openbao import OpenBao

from patchgate.config import load_lab
from patchgate.errors import SecretsError
from patchgate.evidence.manifests import build_evidence_manifest
from patchgate.evidence.signing import SignatureMismatch, SigningError, sign_run, verify_run

from .helpers import clean_env, explain, from_example, patchgate
from .vaultlab import VaultLab


def run_folder(base: Path, lab_file: Path | str) -> Path:
    out = base / "run"
    out.mkdir()
    check = {"vm": "ws25-hp-01", "area": "hotpatch", "invariant": "hotpatch.track", "status": "passed"}
    (out / "gate.json").write_text(json.dumps({"verdict": "approve", "exit_code": 0, "run_id": "r1",
                                               "checks": [check]}, indent=2))
    (out / "run-manifest.json").write_text(json.dumps({"verdict": "approve",
                                                       "lab": {"name": "vault-twin", "file": str(lab_file)}}))
    manifest = build_evidence_manifest(out, "r1")  # what the evidence hooks write last, over every file
    (out / "evidence-manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture
def lab_file(vault_lab: VaultLab, tmp_path: Path) -> Path:
    return from_example("vault.example.yaml", tmp_path / "lab.yaml",
                        secrets_settings=vault_lab.secrets_section(auth="token")["settings"])


@pytest.fixture
def token_env(vault_lab: VaultLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault_lab.token)


def test_sign_run_signs_verdict_and_manifest(lab_file: Path, tmp_path: Path, token_env: None) -> None:
    out = run_folder(tmp_path, lab_file)
    written = sign_run(out, load_lab(lab_file))
    assert sorted(p.name for p in written) == ["evidence-manifest.json.sig", "gate.json.sig",
                                                "patchgate-verdicts.v1.pub.pem"]
    assert verify_run(out) is True  # online, with the lab file the run recorded
    assert verify_run(out, public_key=out / "patchgate-verdicts.v1.pub.pem") is True
    assert verify_run(out, lab=str(lab_file)) is True


def test_sign_run_does_nothing_when_the_lab_does_not_ask(vault_lab: VaultLab, tmp_path: Path) -> None:
    lab = from_example("vault.example.yaml", tmp_path / "lab.yaml",
                       secrets_settings={**vault_lab.secrets_section(auth="token")["settings"], "signing_key": None})
    out = run_folder(tmp_path, lab)
    assert sign_run(out, load_lab(lab)) == []
    assert not list(out.glob("*.sig"))


def test_sign_run_refuses_an_incomplete_run(lab_file: Path, tmp_path: Path, token_env: None) -> None:
    out = run_folder(tmp_path, lab_file)
    (out / "evidence-manifest.json").unlink()
    with pytest.raises(SigningError, match="evidence-manifest.json not written"):
        sign_run(out, load_lab(lab_file))


def test_a_missing_signature_fails(lab_file: Path, tmp_path: Path, token_env: None) -> None:
    out = run_folder(tmp_path, lab_file)
    sign_run(out, load_lab(lab_file))
    (out / "evidence-manifest.json.sig").unlink()
    with pytest.raises(SignatureMismatch, match=r"evidence-manifest.json: no signature"):
        verify_run(out, public_key=out / "patchgate-verdicts.v1.pub.pem")


def test_online_verification_without_the_lab_file_says_what_to_do(lab_file: Path, tmp_path: Path,
                                                                   token_env: None) -> None:
    out = run_folder(tmp_path, tmp_path / "moved-away.yaml")
    sign_run(out, load_lab(lab_file))
    with pytest.raises(ValueError, match="--lab LAB, or --public-key FILE"):
        verify_run(out)
    assert verify_run(out, lab=load_lab(lab_file)) is True


def test_verify_cli_takes_the_lab(vault_lab: VaultLab, lab_file: Path, tmp_path: Path, token_env: None) -> None:
    """`patchgate verify --lab`: an auditor's copy of the lab file when the run's own path is gone."""
    out = run_folder(tmp_path, tmp_path / "moved-away.yaml")
    sign_run(out, load_lab(lab_file))
    env = clean_env(tmp_path / "state", VAULT_TOKEN=vault_lab.token)
    without = patchgate("verify", str(out), env=env)
    assert without.returncode == 1 and "pass --lab LAB" in without.stdout, explain(without)
    proc = patchgate("verify", str(out), "--lab", str(lab_file), env=env)
    assert proc.returncode == 0 and "signatures: 2 verified" in proc.stdout, explain(proc)


def test_signing_with_a_token_that_may_not_sign_is_a_clear_error(vault_lab: VaultLab, openbao: OpenBao,
                                                                 lab_file: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    weak = openbao.client().auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", weak)
    out = run_folder(tmp_path, lab_file)
    with pytest.raises(SecretsError, match="permission denied") as caught:
        sign_run(out, load_lab(lab_file))
    assert weak not in str(caught.value)


def test_verify_fails_a_run_of_a_signing_lab_whose_signatures_were_removed(lab_file: Path, tmp_path: Path,
                                                                           token_env: None) -> None:
    """run-manifest.json of this folder predates the signing record: the recorded lab file says it signs."""
    out = run_folder(tmp_path, lab_file)
    sign_run(out, load_lab(lab_file))
    for sig in out.glob("*.sig"):
        sig.unlink()
    proc = patchgate("verify", str(out), env=clean_env(tmp_path / "state"))
    assert proc.returncode == 1, explain(proc)
    assert f"no signature (gate.json.sig, evidence-manifest.json.sig) although lab file {lab_file}" in proc.stdout
