"""Issue 6 end to end: a full `patchgate validate` on the twin lab whose credentials, leases and signing key
live in a real OpenBao server.

* No canary (password, token, AppRole secret_id) appears in any output file or in the captured logs,
  with DEBUG logging of every library (pypsrp, requests/urllib3, hvac) switched on; nor does the token of any
  URL the VMs pulled the candidate from.
* The signed verdict verifies online (transit) and offline (exported public key); one changed byte or
  another key fails verification.
* `patchgate leases --lab` lists Vault leases.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.openbao import OpenBao

from patchgate.config import load_lab
from patchgate.config.lab import VaultAuth, VaultSecretsSettings
from patchgate.leases import build_lease_manager
from patchgate.secrets.redact import MASK
from patchgate.secrets.vault_session import VaultSession
from patchgate.evidence.signing import SignatureMismatch, export_public_key, verify_run

from .helpers import (
    all_files,
    canary_forms,
    clean_env,
    explain,
    find_leaks,
    from_example,
    gate,
    patchgate,
)
from .vaultlab import VaultLab

pytestmark = pytest.mark.slow

DEBUG_LOGS = ("--", "--log-level=DEBUG", "-o", "log_cli=true", "-o", "log_cli_level=DEBUG")


@dataclass
class VaultRun:
    auth: str
    lab_path: Path
    out: Path
    env: dict[str, str]
    logs: dict[str, str]  # "validate stdout" -> text, ...
    validate: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module", params=["token", "approle"])
def vault_run(request: pytest.FixtureRequest, vault_lab: VaultLab,
              tmp_path_factory: pytest.TempPathFactory) -> VaultRun:
    """KB5070881 on the twin lab with Vault credentials, Vault leases and signing; then `patchgate report`."""
    auth = str(request.param)
    base = tmp_path_factory.mktemp(f"vault-run-{auth}")
    lab_path = from_example("vault.example.yaml", base / "vault-twin.yaml",
                            secrets_settings=vault_lab.secrets_section(auth=auth)["settings"])
    env = clean_env(base / "state", **vault_lab.env(auth))
    out = base / "out"
    validate = patchgate("validate", "--lab", str(lab_path), "--candidate", "KB5070881", "--out", str(out),
                         *DEBUG_LOGS, env=env)
    report = patchgate("report", str(out), env=env)
    logs = {"validate stdout": validate.stdout, "validate stderr": validate.stderr,
            "report stdout": report.stdout, "report stderr": report.stderr}
    assert report.returncode == 0, explain(report)
    return VaultRun(auth, lab_path, out, env, logs, validate)


def test_run_with_vault_credentials_gives_the_twin_verdict(vault_run: VaultRun) -> None:
    assert vault_run.validate.returncode == 1, explain(vault_run.validate)
    data = gate(vault_run.out)
    assert data["verdict"] == "block"
    failed = {(c["vm"], c["invariant"]) for c in data["checks"] if c["status"] == "failed"}
    assert failed == {("ws25-hp-01", "hotpatch.track"), ("ws25-az-01", "hotpatch.track"),
                      ("ws25-wsus-01", "hotpatch.track")}
    assert not [c for c in data["checks"] if c["status"] == "broken"]
    assert data["cert_validation"]["secrets"] is True


def test_debug_logs_of_every_library_were_produced(vault_run: VaultRun) -> None:
    """The leak check below only means something if the chatty loggers actually ran (transport loggers are
    pinned to WARNING once remoting starts, by design; before that they log the Vault requests)."""
    out = vault_run.logs["validate stdout"]
    for logger in ("DEBUG", "urllib3.connectionpool", "patchgate_twin.wsman", "patchgate.remoting.psrp",
                   "patchgate.leases"):
        assert logger in out, f"{logger} missing from the live log"
    assert "/v1/auth/token/lookup-self" in out  # urllib3 logged the Vault requests of the login
    registered = re.search(r"secrets registered for redaction: (\d+)", out)
    assert registered and int(registered.group(1)) >= 3, "the run did not register the Vault values"


def test_no_canary_in_any_output_file_or_log(vault_run: VaultRun, vault_lab: VaultLab) -> None:
    forms = canary_forms(vault_lab.canaries, vault_lab.users)
    files = all_files(vault_run.out)
    names = {p.relative_to(vault_run.out).as_posix() for p in files}
    for expected in ("gate.json", "junit.xml", "run-manifest.json", "evidence-manifest.json",
                     "gate.json.sig", "evidence-manifest.json.sig", "summary.md", "summary.html",
                     "report/index.html", "vms/ws25-hp-01.json"):
        assert expected in names, f"{expected} was not written: {sorted(names)[:40]}"
    assert any(n.startswith("allure-results/") and n.endswith("-attachment.txt") for n in names)
    leaks = find_leaks(forms, files=files, texts=vault_run.logs)
    assert not leaks, "secrets leaked:\n" + "\n".join(f"{leak.where}" for leak in leaks)


TOKEN_URL = re.compile(r"/p/[A-Za-z0-9_-]{40,}/")  # a content server URL with its token in clear


def test_no_content_server_token_in_any_output_file_or_log(vault_run: VaultRun) -> None:
    """Each VM pulled the candidate with a token URL of this run; the token is nowhere in what the run left."""
    for path in (vault_run.out / "vms").glob("*.json"):
        install = next(s for s in json.loads(path.read_text())["steps"] if s["name"] == "install")
        assert "pulled 1 package(s)" in install["detail"], install  # the leak check below means something
    leaks = [str(p) for p in all_files(vault_run.out) if TOKEN_URL.search(p.read_bytes().decode("latin-1"))]
    leaks += [name for name, text in vault_run.logs.items() if TOKEN_URL.search(text)]
    assert not leaks, leaks


def test_outputs_carry_the_verdict_not_masks(vault_run: VaultRun) -> None:
    """Nothing secret came near the verdict files: they needed no masking (a mask there would mean a
    secret reached them and was caught late)."""
    assert "patchgate.verdict" in (vault_run.out / "junit.xml").read_text(encoding="utf-8")
    assert MASK not in json.dumps(gate(vault_run.out))
    # the wsus role's credentials came from their own path: the WSUS VM passed its WSUS checks
    assert any(c["vm"] == "ws25-wsus-01" and c["invariant"].startswith("wsus") and c["status"] == "passed"
               for c in gate(vault_run.out)["checks"])


# ------------------------------------------------------------------ signed verdicts


def test_signed_verdict_verifies_online_and_offline(vault_run: VaultRun, vault_lab: VaultLab) -> None:
    sig = json.loads((vault_run.out / "gate.json.sig").read_text())
    assert (sig["key"], sig["algorithm"], sig["mount"]) == (vault_lab.key, "ed25519", vault_lab.transit_mount)
    online = patchgate("verify", str(vault_run.out), env=vault_run.env)
    assert online.returncode == 0, explain(online)
    assert "signatures: 2 verified" in online.stdout
    public = vault_run.out / f"{vault_lab.key}.v{sig['key_version']}.pub.pem"
    offline = patchgate("verify", str(vault_run.out), "--public-key", str(public), env=clean_env(Path("/nonexistent")))
    assert offline.returncode == 0, explain(offline)
    assert "signatures: 2 verified" in offline.stdout


@pytest.mark.parametrize("target", ["gate.json", "evidence-manifest.json"])
def test_one_changed_byte_fails_verification(vault_run: VaultRun, vault_lab: VaultLab, tmp_path: Path,
                                              target: str) -> None:
    copy = shutil.copytree(vault_run.out, tmp_path / "run")
    data = bytearray((copy / target).read_bytes())
    at = data.index(b'"run_id"')  # flip one byte inside a value, keeping the JSON valid
    data[at + 1] = ord("R")
    (copy / target).write_bytes(bytes(data))
    public = next(copy.glob("*.pub.pem"))
    for extra, env in (((), vault_run.env), (("--public-key", str(public)), vault_run.env)):
        proc = patchgate("verify", str(copy), *extra, env=env)
        assert proc.returncode == 1, explain(proc)
        assert f"{target}: signature does not match" in proc.stdout, explain(proc)


def test_another_key_fails_verification(vault_run: VaultRun, vault_lab: VaultLab, openbao: OpenBao,
                                        tmp_path: Path) -> None:
    copy = shutil.copytree(vault_run.out, tmp_path / "run")
    other = export_public_key(openbao.client(), vault_lab.other_key, tmp_path / "keys",
                              mount=vault_lab.transit_mount)
    offline = patchgate("verify", str(copy), "--public-key", str(other), env=vault_run.env)
    assert offline.returncode == 1, explain(offline)
    assert "gate.json: signature does not match" in offline.stdout
    # online: the signature files name the other transit key; Vault says the signatures are not its own
    for sig in copy.glob("*.sig"):
        record = json.loads(sig.read_text())
        record["key"] = vault_lab.other_key
        sig.write_text(json.dumps(record))
    settings = VaultSecretsSettings(address=vault_lab.address)  # root: the lab's policy may not use other-key
    with VaultSession(settings, token=openbao.root_token, renew=False) as session, \
            pytest.raises(SignatureMismatch, match="gate.json: signature does not match"):
        verify_run(copy, session=session)


# ------------------------------------------------------------------ leases


def test_run_released_its_vault_leases_and_cli_lists_held_ones(vault_run: VaultRun,
                                                               vault_lab: VaultLab) -> None:
    listed = patchgate("leases", "--lab", str(vault_run.lab_path), env=vault_run.env)
    assert listed.returncode == 0, explain(listed)
    assert "No VM leases held in lab vault-twin (vault)" in listed.stdout
    lab = load_lab(vault_run.lab_path)
    settings = lab.secrets.settings.model_copy(update={"auth": VaultAuth(method="token")})  # type: ignore[union-attr]
    with VaultSession(settings, token=vault_lab.token, renew=False) as session:
        manager = build_lease_manager(lab, session=session)
        assert manager.kind == "vault" and manager.list_leases() == []
        with manager.acquire(["ws25-hp-01", "ws25-mbr-01"], "it-held-run", timeout=10, auto_renew=False):
            held = patchgate("leases", "--lab", str(vault_run.lab_path), env=vault_run.env)
            assert held.returncode == 0, explain(held)
            rows = [line.split() for line in held.stdout.splitlines() if "it-held-run" in line]
            assert sorted(row[0] for row in rows) == ["ws25-hp-01", "ws25-mbr-01"], held.stdout
            assert all(row[1] == "held" for row in rows), held.stdout
        assert manager.list_leases() == []
        manager.close()


def test_the_leak_finder_sees_every_form(tmp_path: Path) -> None:
    """The check above must be able to fail: a raw value and a Basic auth header are both found."""
    forms = canary_forms(["canarypwXYZ123"], ["CONTOSO\\svc"])
    (tmp_path / "raw.txt").write_text("password=canarypwXYZ123")
    (tmp_path / "header.bin").write_bytes(b"Authorization: Basic " + next(
        f for f in forms if f != "canarypwXYZ123").encode())
    leaks = find_leaks(forms, files=all_files(tmp_path), texts={"log": "clean"})
    assert sorted(Path(leak.where).name for leak in leaks) == ["header.bin", "raw.txt"]
