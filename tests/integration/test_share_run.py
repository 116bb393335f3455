"""``staging.source: share`` with an account of its own, end to end: `patchgate validate` of a twin lab whose
twin serves \\\\dist01\\packages from a folder, readable by one account; the harness reads that account from the
lab's secrets (env) and the VM maps the share with it over the twin's WSMan endpoint.

* the right account: the package is copied from the share and installed (approve);
* a wrong account: the VM is broken, the run inconclusive (exit 2), the message names the share and the account,
  never a password;
* no canary (the share's password, the remoting password) in any output file or in the debug logs;
* the same package on an https distribution point with Basic authentication and a lab CA's certificate, which
  the twin's VMs trust through ``hypervisor.settings.trusted_ca``: downloaded with the account, approved.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT, all_files, canary_forms, clean_env, explain, find_leaks, gate, patchgate

pytestmark = pytest.mark.slow

DEBUG_LOGS = ("--", "--log-level=DEBUG", "-o", "log_cli=true", "-o", "log_cli_level=DEBUG")
VM = "ws25-mbr-01"
KB = "KB5070893"
SHARE = r"\\dist01\packages"
SHARE_USER = r"CONTOSO\svc-dist"


@dataclass
class ShareRun:
    out: Path
    validate: subprocess.CompletedProcess[str]
    canaries: list[str]

    @property
    def logs(self) -> dict[str, str]:
        return {"validate stdout": self.validate.stdout, "validate stderr": self.validate.stderr}


def _share_folder(base: Path) -> Path:
    """The share's folder on this machine, holding the candidate and its package (the harness checks the same
    file's hash before the VM copies it)."""
    folder = base / "share" / "2025-10"
    folder.mkdir(parents=True)
    document = yaml.safe_load((ROOT / "candidates" / f"{KB}.yaml").read_text(encoding="utf-8"))
    for package in document["packages"]:
        shutil.copy(ROOT / "candidates" / package["file"], folder)
        package["file"] = Path(package["file"]).name
    (folder / f"{KB}.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder


def _lab(base: Path, folder: Path) -> Path:
    document = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    document["name"] = f"share-{base.name}"[:40]
    document["hypervisor"]["settings"]["noise"] = "quiet"
    document["hypervisor"]["settings"]["shares"] = [
        {"unc": SHARE, "folder": str(folder.parent), "username": SHARE_USER, "password_env": "TWIN_DIST_PASSWORD"}]
    document["secrets"] = {"kind": "env"}
    document["staging"] = {"source": "share", "share": {"path": rf"{SHARE}\2025-10", "credentials": "dist/reader"}}
    path = base / "share-lab.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _run(base: Path, *, right: bool) -> ShareRun:
    folder = _share_folder(base)
    lab = _lab(base, folder)
    share_password = "canaryshare" + secrets.token_hex(10)
    remoting_password = "canaryremote" + secrets.token_hex(10)
    given = share_password if right else "canarywrong" + secrets.token_hex(10)
    env = clean_env(base / "state", PATCHGATE_USERNAME=r"CONTOSO\svc-patch", PATCHGATE_PASSWORD=remoting_password,
                    DIST_READER_USERNAME=SHARE_USER, DIST_READER_PASSWORD=given,
                    TWIN_DIST_PASSWORD=share_password)
    out = base / "out"
    validate = patchgate("validate", "--lab", str(lab), "--candidate", str(folder / f"{KB}.yaml"), "--vm", VM,
                         "--out", str(out), *DEBUG_LOGS, env=env)
    return ShareRun(out, validate, sorted({share_password, remoting_password, given}))


def _assert_no_leaks(run: ShareRun, files: list[Path]) -> None:
    leaks = find_leaks(canary_forms(run.canaries, [SHARE_USER, r"CONTOSO\svc-patch"]), files=files, texts=run.logs)
    assert not leaks, "secrets leaked:\n" + "\n".join(f"{leak.where}" for leak in leaks)


def _https_run(base: Path) -> tuple[ShareRun, list[str]]:
    from support.https_share import HttpsShare, make_lab_ca

    folder = _share_folder(base)
    ca, cert, key = make_lab_ca(base)
    share_password = "canaryhttps" + secrets.token_hex(10)
    remoting_password = "canaryremote" + secrets.token_hex(10)
    with HttpsShare(folder, cert, key, SHARE_USER, share_password) as server:
        document = yaml.safe_load(_lab(base, folder).read_text(encoding="utf-8"))
        document["hypervisor"]["settings"]["shares"] = []
        document["hypervisor"]["settings"]["trusted_ca"] = str(ca)
        document["staging"]["share"]["path"] = server.url
        lab = base / "https-share-lab.yaml"
        lab.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        env = clean_env(base / "state", PATCHGATE_USERNAME=r"CONTOSO\svc-patch",
                        PATCHGATE_PASSWORD=remoting_password, DIST_READER_USERNAME=SHARE_USER,
                        DIST_READER_PASSWORD=share_password)
        out = base / "out"
        validate = patchgate("validate", "--lab", str(lab), "--candidate", str(folder / f"{KB}.yaml"), "--vm", VM,
                             "--out", str(out), *DEBUG_LOGS, env=env)
    return ShareRun(out, validate, sorted({share_password, remoting_password})), list(server.seen)


@pytest.fixture(scope="module")
def https_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShareRun, list[str]]:
    return _https_run(tmp_path_factory.mktemp("share-https"))


def test_an_https_share_with_its_account_and_a_lab_ca_installs_and_leaks_nothing(https_run) -> None:
    run, seen = https_run
    assert run.validate.returncode == 0, explain(run.validate)
    assert gate(run.out)["verdict"] == "approve"
    assert "pulled 1 package(s)" in _install_step(run)["detail"]
    assert seen == ["challenged", "served"]  # the VM answered the server's Basic challenge with the account
    _assert_no_leaks(run, all_files(run.out))


@pytest.fixture(scope="module")
def right_run(tmp_path_factory: pytest.TempPathFactory) -> ShareRun:
    return _run(tmp_path_factory.mktemp("share-right"), right=True)


@pytest.fixture(scope="module")
def wrong_run(tmp_path_factory: pytest.TempPathFactory) -> ShareRun:
    return _run(tmp_path_factory.mktemp("share-wrong"), right=False)


def _install_step(run: ShareRun) -> dict:
    record = json.loads((run.out / "vms" / f"{VM}.json").read_text(encoding="utf-8"))
    return next(s for s in record["steps"] if s["name"] == "install")


def test_the_right_account_copies_the_package_from_the_share_and_installs_it(right_run: ShareRun) -> None:
    assert right_run.validate.returncode == 0, explain(right_run.validate)
    assert gate(right_run.out)["verdict"] == "approve"
    assert "pulled 1 package(s)" in _install_step(right_run)["detail"]


def test_a_wrong_account_is_inconclusive_naming_the_share_never_the_password(wrong_run: ShareRun) -> None:
    assert wrong_run.validate.returncode == 2, explain(wrong_run.validate)
    data = gate(wrong_run.out)
    assert data["verdict"] == "inconclusive"
    broken = [c for c in data["checks"] if c["status"] == "broken" and c["vm"] == VM]
    assert broken, data["checks"]
    message = broken[0]["message"]
    assert SHARE in message and SHARE_USER in message and "network password is not correct" in message, message
    assert not any(c in message for c in wrong_run.canaries)


@pytest.mark.parametrize("which", ["right", "wrong"])
def test_no_password_in_any_output_file_or_log(which: str, right_run: ShareRun, wrong_run: ShareRun) -> None:
    run = right_run if which == "right" else wrong_run
    assert "DEBUG" in run.validate.stdout and "patchgate_twin" in run.validate.stdout  # the logs did run
    files = all_files(run.out)
    assert any(p.name == "gate.json" for p in files)
    _assert_no_leaks(run, files)
