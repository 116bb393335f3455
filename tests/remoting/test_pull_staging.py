"""The VM pulls the candidate: the run's real content server, a twin VM downloading from it over HTTPS, the hash
checked on the VM before anything is installed. No mocks: a TwinShell answers the ops, the content server serves
real files from a temp folder, and the download is a real TLS connection from the twin's code."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import pickle
import ssl
import urllib.parse
from pathlib import Path

import pytest

from patchgate.config import load_lab
from patchgate.config.candidate import Candidate
from patchgate.errors import LabTimeout, StagingError
from patchgate.remoting import staging
from patchgate.remoting.content import ContentServer
from patchgate.secrets.redact import redactor
from patchgate_twin import filecopy
from patchgate_twin.catalog import Catalog
from patchgate_twin.faults import parse_faults
from patchgate_twin.inprocess_remoting import InProcessSession
from patchgate_twin.lab import TwinLab
from patchgate_twin.shell_impl import TwinShell

ROOT = Path(__file__).resolve().parents[2]
VM = "ws25-mbr-01"
KB = "KB5070893"
SIZE = 3 * (1 << 20) + 12345  # several chunks, not a round number


def _candidate(folder: Path, data: bytes) -> Candidate:
    name = "windows11.0-kb5070893-x64.msu"
    (folder / name).write_bytes(data)
    source = folder / f"{KB}.yaml"
    source.write_text(f"kb: {KB}\n")
    return Candidate(kb=KB, title="2025-10 cumulative update", classification="lcu", target_build="26100.6905",
                     release_date=dt.date(2025, 10, 14),
                     packages=[{"file": name, "sha256": hashlib.sha256(data).hexdigest()}],
                     references={"kb_article": "https://support.microsoft.com/help/5070893"}, source=source)


def _package() -> bytes:
    """A real-size stand-in: the twin installs what names its KB near the top, whatever follows."""
    head = f"patchgate twin stand-in\nkb: {KB}\n".encode()
    return head + os.urandom(SIZE - len(head))


@pytest.fixture
def twin():
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    twin = TwinLab(lab, Catalog.load())
    twin.revert(VM)
    twin.power_on(VM)
    yield twin
    twin.stop.set()
    twin.close()


@pytest.fixture
def server():
    with ContentServer(run_id="run-a") as content:
        yield content


def _session(twin: TwinLab, *faults: str) -> InProcessSession:
    twin.vm(VM).faults = parse_faults(list(faults))
    return InProcessSession(TwinShell(twin), VM)


def _staged_key(candidate: Candidate) -> str:
    return filecopy.key(rf"{staging.DEFAULT_STAGING_DIR}\{KB}\{candidate.packages[0].file}")


def test_a_dropped_download_resumes_and_installs_the_right_file(twin, server, tmp_path):
    data = _package()
    candidate = _candidate(tmp_path, data)
    result = staging.stage_and_install(_session(twin, "download-drops"), candidate, timeout=60, source=server,
                                       stage_timeout=60)
    assert result.exit_code == 0 and twin.host(VM).has_kb(KB)
    assert [(f.method, f.resumes) for f in result.fetched] == [("http", 1)]
    assert twin.files(VM).read_bytes(_staged_key(candidate)) == data
    # resumed with a Range request, not started over: two requests, and the VM received each byte once
    assert server.requests(VM) == 2
    assert result.fetched[0].bytes == SIZE


def test_a_wrong_byte_is_refused_on_the_vm_and_nothing_is_installed(twin, server, tmp_path):
    candidate = _candidate(tmp_path, _package())
    with pytest.raises(StagingError) as info:
        staging.stage_and_install(_session(twin, "download-corrupts"), candidate, timeout=60, source=server,
                                  stage_timeout=60)
    message = str(info.value)
    assert "sha256 mismatch" in message and "refusing to install" in message and VM in message
    assert info.value.step == "stage"
    assert not twin.host(VM).has_kb(KB)
    assert not twin.files(VM).exists(_staged_key(candidate))  # the refused download was deleted


def test_a_stalled_download_ends_at_the_stage_timeout(twin, server, tmp_path):
    candidate = _candidate(tmp_path, _package())
    with pytest.raises(LabTimeout) as info:
        staging.stage_and_install(_session(twin, "download-stalls"), candidate, timeout=60, source=server,
                                  stage_timeout=1)
    assert "timeouts.stage" in str(info.value) and info.value.step == "stage"
    assert not twin.host(VM).has_kb(KB)


def test_a_package_already_on_the_vm_is_not_fetched_again(twin, server, tmp_path):
    data = _package()
    candidate = _candidate(tmp_path, data)
    twin.files(VM).write_bytes(_staged_key(candidate), data)  # a snapshot that ships it
    result = staging.stage_and_install(_session(twin), candidate, timeout=60, source=server, stage_timeout=60)
    assert [f.method for f in result.fetched] == ["present"] and twin.host(VM).has_kb(KB)
    assert server.requests(VM) == 0 and server.sent(VM) == 0


def test_a_pin_that_is_not_the_servers_certificate_is_refused(twin, server, tmp_path):
    candidate = _candidate(tmp_path, _package())

    class WrongPin:
        def offer(self, path, sha256, *, vm=None):
            real = server.offer(path, sha256, vm=vm)
            return type(real)(url=real.url, sha256=real.sha256, size=real.size, fingerprint="00" * 32)

    with pytest.raises(StagingError, match="remote certificate is invalid"):
        staging.stage_and_install(_session(twin), candidate, timeout=60, source=WrongPin(), stage_timeout=60)
    assert server.requests(VM) == 0 and not twin.host(VM).has_kb(KB)


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=10)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_one_runs_token_does_not_fetch_another_runs_package(tmp_path):
    mine, theirs = tmp_path / "mine.msu", tmp_path / "theirs.msu"
    mine.write_bytes(b"run a's package")
    theirs.write_bytes(b"run b's package")
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (mine, theirs)}
    with ContentServer(run_id="run-a") as run_a, ContentServer(run_id="run-b") as run_b:
        offer_a = run_a.offer(mine, sha[mine])
        offer_b = run_b.offer(theirs, sha[theirs])
        assert _get(offer_a.url) == (200, b"run a's package")
        token_a = urllib.parse.urlsplit(offer_a.url).path.split("/")[2]
        token_b = urllib.parse.urlsplit(offer_b.url).path.split("/")[2]
        assert token_a != token_b and len(token_a) >= 40
        # run a's token at run b's server, for run b's file: nothing, and nothing said about why
        port_b = urllib.parse.urlsplit(offer_b.url).port
        assert _get(f"https://127.0.0.1:{port_b}/p/{token_a}/{sha[theirs]}/theirs.msu") == (404, b"not found")
        # a token names exactly one file: run a's token with another file's hash is nothing either
        assert _get(offer_a.url.replace(sha[mine], sha[theirs]))[0] == 404
        assert run_a.fingerprint != run_b.fingerprint  # a certificate per run
    with pytest.raises(OSError):  # the run ended: its server is gone, and its token with it
        _get(offer_a.url)


def test_ranges_resume_and_the_token_is_masked_in_any_text(tmp_path, server):
    path = tmp_path / "p.msu"
    path.write_bytes(bytes(range(256)) * 40)
    offer = server.offer(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert _get(offer.url, Range="bytes=10000-") == (206, (bytes(range(256)) * 40)[10000:])
    assert _get(offer.url, Range="bytes=20000-")[0] == 416
    token = urllib.parse.urlsplit(offer.url).path.split("/")[2]
    assert token not in redactor.redact(f"GET {offer.url} failed")


def test_the_twin_keeps_pulled_files_on_its_disk_not_in_its_hosts(twin, server, tmp_path):
    candidate = _candidate(tmp_path, _package())
    staging.fetch(_session(twin), candidate, server, timeout=60)
    host = twin.host(VM)
    assert len(pickle.dumps(host)) < SIZE // 10  # what a snapshot, a revert or the disk file copies
    digest = host.files[_staged_key(candidate)]
    assert twin.store(VM).path(digest).stat().st_size == SIZE
    twin.revert(VM)  # the reverted guest's files are gone from the disk folder too
    assert not twin.store(VM).path(digest).exists()


def test_the_folder_holds_the_candidates_packages_and_nothing_else(twin, server, tmp_path):
    """DISM finds a checkpoint cumulative update's prerequisites in the target's folder: a package another
    candidate left there is removed before the install."""
    candidate = _candidate(tmp_path, _package())
    stray = filecopy.key(rf"{staging.DEFAULT_STAGING_DIR}\{KB}\windows11.0-kb9999999-x64.msu")
    twin.files(VM).write_bytes(stray, b"kb: KB9999999\n")  # left there, DISM (the twin) would fail on it
    result = staging.stage_and_install(_session(twin), candidate, timeout=60, source=server, stage_timeout=60)
    assert not twin.files(VM).exists(stray) and twin.files(VM).exists(_staged_key(candidate))
    assert twin.host(VM).has_kb(KB) and result.exit_code == 0


def test_a_share_the_twin_does_not_serve_breaks_the_vm(twin, tmp_path):
    from patchgate.config.staging import Staging
    from patchgate.remoting.sources import ShareOffers, package_source

    candidate = _candidate(tmp_path, _package())
    share = Staging(source="share", share={"path": r"\\files01\updates"})
    offers = ShareOffers(share.share)
    (tmp_path / "a.msu").write_bytes(b"x")
    assert offers.offer(tmp_path / "a.msu", "AB" * 32).url == r"\\files01\updates\a.msu"
    with pytest.raises(StagingError, match="network path was not found") as info:
        staging.stage_and_install(_session(twin), candidate, timeout=60, source=offers, stage_timeout=60)
    assert r"\\files01\updates" in str(info.value) and "the VM's own account" in str(info.value)
    assert not twin.host(VM).has_kb(KB)
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    assert package_source(lab.model_copy(update={"staging": Staging(source="push")}), "run-x") is None


SHARE_PASSWORD = "share-canary-" + os.urandom(8).hex()


@pytest.fixture
def share_twin(tmp_path, monkeypatch):
    """The twin serving \\\\dist01\\packages from a folder, readable by CONTOSO\\svc-dist only."""
    from patchgate_twin.settings import TwinShare

    folder = tmp_path / "share"
    (folder / "2025-10").mkdir(parents=True)
    monkeypatch.setenv("TWIN_DIST_PASSWORD", SHARE_PASSWORD)
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    settings = lab.hypervisor.settings.model_copy(update={"shares": [TwinShare(
        unc=r"\\dist01\packages", folder=str(folder), username=r"CONTOSO\svc-dist",
        password_env="TWIN_DIST_PASSWORD")]})
    lab = lab.model_copy(update={"hypervisor": lab.hypervisor.model_copy(update={"settings": settings})})
    twin = TwinLab(lab, Catalog.load())
    twin.revert(VM)
    twin.power_on(VM)
    yield twin, folder / "2025-10"
    twin.stop.set()
    twin.close()


def _share_offers(password: str | None):
    from pydantic import SecretStr

    from patchgate.config.staging import ShareSource
    from patchgate.remoting.sources import ShareOffers
    from patchgate.secrets.base import Credentials

    account = None if password is None else Credentials(r"CONTOSO\svc-dist", SecretStr(password))
    if password:
        redactor.register(password)
    return ShareOffers(ShareSource(path=r"\\dist01\packages\2025-10", credentials="lab/dist"), account)


def test_a_share_read_with_the_right_account_installs(share_twin, tmp_path):
    twin, folder = share_twin
    data = _package()
    candidate = _candidate(folder, data)
    result = staging.stage_and_install(_session(twin), candidate, timeout=60, source=_share_offers(SHARE_PASSWORD),
                                       stage_timeout=60)
    assert result.exit_code == 0 and twin.host(VM).has_kb(KB)
    assert [f.method for f in result.fetched] == ["copy"]
    assert twin.files(VM).read_bytes(_staged_key(candidate)) == data


@pytest.mark.parametrize(("password", "refusal"), [("wrong-password-4711", "network password is not correct"),
                                                    (None, "Access is denied")])
def test_a_share_refuses_a_wrong_or_missing_account_naming_the_share_never_the_secret(share_twin, password,
                                                                                     refusal):
    twin, folder = share_twin
    candidate = _candidate(folder, _package())
    with pytest.raises(StagingError, match=refusal) as info:
        staging.stage_and_install(_session(twin), candidate, timeout=60, source=_share_offers(password),
                                  stage_timeout=60)
    message = str(info.value)
    assert r"\\dist01\packages" in message and info.value.step == "stage"
    assert SHARE_PASSWORD not in message and (password is None or password not in message)
    assert not twin.host(VM).has_kb(KB) and not twin.files(VM).exists(_staged_key(candidate))


def test_a_share_account_comes_from_the_labs_secrets(tmp_path):
    from patchgate.config.staging import Staging
    from patchgate.errors import LabError, SecretsError
    from patchgate.remoting.sources import package_source
    from patchgate.secrets.env import EnvSecretsProvider
    from patchgate_twin.secrets import TwinSecretsProvider

    lab = load_lab(ROOT / "labs" / "twin.yaml")
    with_account = lab.model_copy(update={"staging": Staging(source="share", share={
        "path": "https://files01/updates", "credentials": "lab/share-reader"})})
    env = {"LAB_SHARE_READER_USERNAME": r"CONTOSO\svc-dist", "LAB_SHARE_READER_PASSWORD": SHARE_PASSWORD}
    offers = package_source(with_account, "run-x", EnvSecretsProvider(environ=env))
    (tmp_path / "a.msu").write_bytes(b"x")
    offer = offers.offer(tmp_path / "a.msu", "AB" * 32)
    assert offer.url == "https://files01/updates/a.msu" and offer.credentials.username == r"CONTOSO\svc-dist"
    assert SHARE_PASSWORD not in repr(offer) and redactor.redact(SHARE_PASSWORD) != SHARE_PASSWORD
    with pytest.raises(SecretsError, match="LAB_SHARE_READER_PASSWORD"):
        package_source(with_account, "run-x", EnvSecretsProvider(environ={"LAB_SHARE_READER_USERNAME": "u"}))
    with pytest.raises(SecretsError, match="keeps no share accounts"):
        package_source(with_account, "run-x", TwinSecretsProvider())
    with pytest.raises(LabError, match="no secrets provider"):
        package_source(with_account, "run-x")
