"""A promotion record of a run whose lab signs verdicts: the promotions appendix is signed with the lab's transit
key (a real OpenBao), `verify` checks it online and offline, and a missing or non-matching signature fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchgate.config import load_lab
from patchgate.evidence.hashing import sha256_file
from patchgate.evidence.manifests import build_evidence_manifest, verify_dir
from patchgate.evidence.promotions import APPENDIX, sign_appendix, write_record
from patchgate.evidence.signing import sign_run

from .helpers import from_example
from .test_signing_glue import run_folder
from .vaultlab import VaultLab

pytestmark = pytest.mark.slow


@pytest.fixture
def signed_run(vault_lab: VaultLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("VAULT_TOKEN", vault_lab.token)
    lab_file = from_example("vault.example.yaml", tmp_path / "lab.yaml",
                            secrets_settings=vault_lab.secrets_section(auth="token")["settings"])
    out = run_folder(tmp_path, lab_file)
    manifest = json.loads((out / "run-manifest.json").read_text())
    manifest["signing"] = {"required": True, "key": vault_lab.key, "mount": "transit"}  # as a signing lab's run
    (out / "run-manifest.json").write_text(json.dumps(manifest))
    (out / "evidence-manifest.json").write_text(json.dumps(build_evidence_manifest(out, "r1")))
    sign_run(out, load_lab(lab_file))
    return out, lab_file


def _promote(out: Path, lab_file: Path) -> list[Path]:
    write_record(out, "ring1", {"schema": "patchgate.promotion/1", "ring": "ring1", "groups": ["ring1-servers"]},
                 evidence_sha256=sha256_file(out / "evidence-manifest.json"))
    return sign_appendix(out, load_lab(lab_file))


def test_the_appendix_is_signed_and_verifies_online_and_offline(signed_run):
    out, lab_file = signed_run
    written = _promote(out, lab_file)
    assert out / (APPENDIX + ".sig") in written
    online = verify_dir(out)
    assert online.ok, online.lines()
    assert any(n.startswith("promotions: 1 record") for n in online.notes)
    offline = verify_dir(out, public_key=str(next(out.glob("*.pub.pem"))))
    assert offline.ok, offline.lines()


def test_an_unsigned_or_edited_appendix_fails_verify(signed_run):
    out, lab_file = signed_run
    _promote(out, lab_file)
    appendix = out / APPENDIX
    appendix.write_text(appendix.read_text().replace('"size"', '"size" ', 1))
    assert any("promotions/manifest.json.sig" in p and "does not match" in p for p in verify_dir(out).problems)
    (out / (APPENDIX + ".sig")).unlink()
    problems = verify_dir(out).problems
    assert any("no signature (promotions/manifest.json.sig)" in p for p in problems), problems
