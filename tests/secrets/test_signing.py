"""Signed verdicts with a real transit ed25519 key: sign, verify online and offline, reject tampering
and other keys."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from support.labs import make_lab, vault_lab
from support.openbao import OpenBao

from patchgate.errors import SecretsError
from patchgate.evidence.signing import (
    Signature,
    SigningError,
    VerdictSigner,
    check_key,
    export_public_key,
    sign_file,
    signature_path,
    signing_enabled,
    verify_offline,
    verify_online,
)


@pytest.fixture(scope="module")
def transit(openbao: OpenBao) -> str:
    client = openbao.client()
    mount = "transit-" + uuid.uuid4().hex[:6]
    client.sys.enable_secrets_engine("transit", path=mount)
    for name in ("verdicts", "other"):
        client.secrets.transit.create_key(name, key_type="ed25519", mount_point=mount)
    client.secrets.transit.create_key("aes", key_type="aes256-gcm96", mount_point=mount)
    return mount


@pytest.fixture
def gate_json(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "gate.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"verdict": "approve", "candidate": "KB5050001", "checks": 42}, indent=2))
    return path


def test_sign_verify_online_and_offline(openbao: OpenBao, transit: str, gate_json: Path) -> None:
    client = openbao.client()
    sig_path = sign_file(client, gate_json, key="verdicts", mount=transit)
    assert sig_path == signature_path(gate_json) == gate_json.with_name("gate.json.sig")
    sig = Signature.load(sig_path)
    assert (sig.key, sig.key_version, sig.algorithm, sig.file) == ("verdicts", 1, "ed25519", "gate.json")
    assert sig.signature.startswith("vault:v1:")
    pub = export_public_key(client, "verdicts", gate_json.parent, mount=transit)
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert verify_online(client, gate_json)
    assert verify_offline(gate_json, sig_path, pub)


def test_one_changed_byte_fails_both_checks(openbao: OpenBao, transit: str, gate_json: Path) -> None:
    client = openbao.client()
    sig_path = sign_file(client, gate_json, key="verdicts", mount=transit)
    pub = export_public_key(client, "verdicts", gate_json.parent, mount=transit)
    data = bytearray(gate_json.read_bytes())
    data[data.index(b"approve")] ^= 0x01  # 'a' -> '`': one bit of one byte
    gate_json.write_bytes(bytes(data))
    assert not verify_offline(gate_json, sig_path, pub)
    assert not verify_online(client, gate_json)


def test_another_key_fails_both_checks(openbao: OpenBao, transit: str, gate_json: Path) -> None:
    client = openbao.client()
    sig_path = sign_file(client, gate_json, key="verdicts", mount=transit)
    other_pub = export_public_key(client, "other", gate_json.parent, mount=transit)
    assert not verify_offline(gate_json, sig_path, other_pub)
    assert not verify_online(client, gate_json, key="other")
    # and a signature made by the other key does not pass as one of ours
    forged = Signature.load(sign_file(client, gate_json, key="other", mount=transit))
    ours = Signature.load(sig_path)
    (gate_json.parent / "forged.sig").write_text(json.dumps({**ours.__dict__, "signature": forged.signature}))
    our_pub = export_public_key(client, "verdicts", gate_json.parent, mount=transit)
    assert not verify_offline(gate_json, gate_json.parent / "forged.sig", our_pub)


def test_raw_base64_public_key_and_malformed_files(openbao: OpenBao, transit: str, gate_json: Path) -> None:
    client = openbao.client()
    sig_path = sign_file(client, gate_json, key="verdicts", mount=transit)
    raw = client.secrets.transit.read_key("verdicts", mount_point=transit)["data"]["keys"]["1"]["public_key"]
    (gate_json.parent / "raw.pub").write_text(raw)
    assert verify_offline(gate_json, sig_path, gate_json.parent / "raw.pub")
    (gate_json.parent / "bad.sig").write_text("{}")
    with pytest.raises(ValueError, match="not a patchgate signature"):
        verify_offline(gate_json, gate_json.parent / "bad.sig", gate_json.parent / "raw.pub")


def test_wrong_key_type_and_missing_key(openbao: OpenBao, transit: str) -> None:
    with pytest.raises(SigningError, match="needs an ed25519 key"):
        check_key(openbao.client(), "aes", mount=transit)
    with pytest.raises(SecretsError, match=f"{transit}/keys/nope"):
        check_key(openbao.client(), "nope", mount=transit)


def test_verdict_signer_from_lab(openbao: OpenBao, transit: str, gate_json: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert VerdictSigner.from_lab(make_lab({"kind": "twin"})) is None
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(openbao.address, signing_key="verdicts", transit_mount=transit)
    assert signing_enabled(lab)
    manifest = gate_json.with_name("manifest.json")
    manifest.write_text('{"files": {}}')
    signer = VerdictSigner.from_lab(lab)
    assert signer is not None
    try:
        written = signer.sign_run([gate_json, manifest], gate_json.parent)
    finally:
        signer.close()
    names = sorted(p.name for p in written)
    assert names == ["gate.json.sig", "manifest.json.sig", "verdicts.v1.pub.pem"]
    pub = gate_json.parent / "verdicts.v1.pub.pem"
    assert verify_offline(gate_json, None, pub) and verify_offline(manifest, None, pub)
