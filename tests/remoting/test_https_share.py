"""``staging.source: share`` with an https distribution point: the VM downloads from it with the share's account
and checks its certificate as Windows would, against its trust store (here the lab CA of the twin's
``hypervisor.settings.trusted_ca``), never accepting an unknown CA for a server with no pin. A real TLS server with
Basic authentication, a twin VM downloading from it, the harness's staging deciding."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from support.https_share import HttpsShare, make_lab_ca
from test_pull_staging import KB, ROOT, VM, _candidate, _package, _staged_key

from patchgate.config import Lab, load_lab
from patchgate.config.staging import ShareSource
from patchgate.errors import StagingError
from patchgate.remoting import staging
from patchgate.remoting.sources import ShareOffers
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor
from patchgate_twin.catalog import Catalog
from patchgate_twin.inprocess_remoting import InProcessSession
from patchgate_twin.lab import TwinLab
from patchgate_twin.shell_impl import TwinShell

USER, PASSWORD = r"CONTOSO\svc-dist", "Dist-reader-2026!x"


def _lab_trusting(trusted_ca: str | None) -> Lab:
    """labs/twin.yaml with its VMs trusting this CA file (None: only the machine's roots)."""
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    settings = lab.hypervisor.settings.model_copy(update={"trusted_ca": trusted_ca})
    return lab.model_copy(update={"hypervisor": lab.hypervisor.model_copy(update={"settings": settings})})


@pytest.fixture
def share(tmp_path):
    ca, cert, key = make_lab_ca(tmp_path)
    folder = tmp_path / "packages"
    folder.mkdir()
    with HttpsShare(folder, cert, key, USER, PASSWORD) as server:
        yield server, ca


@pytest.fixture
def make_twin():
    """A twin lab whose VMs trust this CA file (None: only the machine's roots), up and running."""
    made: list[TwinLab] = []

    def make(trusted_ca: str | None) -> TwinLab:
        twin = TwinLab(_lab_trusting(trusted_ca), Catalog.load())
        made.append(twin)
        twin.revert(VM)
        twin.power_on(VM)
        return twin

    yield make
    for twin in made:
        twin.stop.set()
        twin.close()


def _stage(twin: TwinLab, server: HttpsShare, password: str):
    redactor.register(password)
    offers = ShareOffers(ShareSource(path=server.url, credentials="lab/dist"),
                         Credentials(USER, SecretStr(password)))
    candidate = _candidate(server.folder, _package())
    return candidate, staging.stage_and_install(InProcessSession(TwinShell(twin), VM), candidate, timeout=60,
                                                source=offers, stage_timeout=60)


def test_a_vm_that_trusts_the_lab_ca_downloads_with_the_share_account_and_installs(share, make_twin):
    server, ca = share
    twin = make_twin(str(ca))
    candidate, result = _stage(twin, server, PASSWORD)
    assert result.exit_code == 0 and twin.host(VM).has_kb(KB)
    assert [f.method for f in result.fetched] == ["http"]
    assert server.seen == ["challenged", "served"]  # the account went only to a server that asked for it
    assert twin.files(VM).read_bytes(_staged_key(candidate)) == (server.folder / candidate.packages[0].file).read_bytes()


def test_a_share_certificate_no_trusted_ca_signed_is_refused_and_nothing_is_installed(share, make_twin):
    server, _ca = share
    twin = make_twin(None)
    with pytest.raises(StagingError, match="Could not establish trust relationship") as info:
        _stage(twin, server, PASSWORD)
    assert info.value.step == "stage" and not twin.host(VM).has_kb(KB)
    assert server.seen == []  # no request, so no account, ever reached a server the VM does not trust


def test_a_wrong_share_password_is_refused_naming_the_answer_never_the_password(share, make_twin):
    server, ca = share
    twin = make_twin(str(ca))
    wrong = "Not-the-password-1!"
    with pytest.raises(StagingError, match=r"\(401\) Unauthorized") as info:
        _stage(twin, server, wrong)
    assert wrong not in str(info.value) and PASSWORD not in str(info.value)
    assert info.value.step == "stage" and not twin.host(VM).has_kb(KB)
    assert server.seen == ["challenged", "refused"]


def test_a_trusted_ca_file_that_does_not_exist_is_bad_input_naming_the_field(tmp_path):
    from patchgate.errors import ConfigError
    from patchgate_twin.lab import check_twin_inputs

    with pytest.raises(ConfigError, match="missing.pem") as info:
        check_twin_inputs(_lab_trusting(str(tmp_path / "missing.pem")), [])
    assert info.value.field == "hypervisor.settings.trusted_ca"
