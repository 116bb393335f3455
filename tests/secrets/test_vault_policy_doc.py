"""The least-privilege policy printed in docs/vault.md is enough for a whole run, and no more."""

from __future__ import annotations

import re
from pathlib import Path

import hvac.exceptions
import pytest
from support.labs import vault_lab
from support.openbao import OpenBao, make_approle

from patchgate.errors import SecretsError
from patchgate.leases import build_lease_manager
from patchgate.secrets import build_secrets
from patchgate.evidence.signing import VerdictSigner, verify_offline, verify_online

DOC = Path(__file__).resolve().parents[2] / "docs" / "vault.md"


def doc_policy() -> str:
    blocks = re.findall(r"```hcl\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/vault.md lost its policy block"
    return blocks[0]


def test_documented_policy_allows_a_run_and_nothing_else(openbao: OpenBao, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    admin = openbao.client()
    if "transit/" not in admin.sys.list_mounted_secrets_engines()["data"]:
        admin.sys.enable_secrets_engine("transit")
    admin.secrets.transit.create_key("patchgate-verdicts", key_type="ed25519")
    kv = admin.secrets.kv.v2
    kv.create_or_update_secret("patchgate/ws2025-prod/vcenter", {"username": "svc@vsphere.local",
                                                                 "password": "doc-hv-pw-1"})
    kv.create_or_update_secret("patchgate/ws2025-prod/windows/default", {"username": "CONTOSO\\svc",
                                                                         "password": "doc-pw-2"})
    kv.create_or_update_secret("patchgate/other-lab/windows/default",
                               {"username": "x", "password": "other-3"})
    role_id, secret_id = make_approle(admin, "patchgate-ws2025-prod", doc_policy())
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    lab = vault_lab(openbao.address, name="ws2025-prod", auth={"method": "approle"},
                    hypervisor_path="patchgate/ws2025-prod/vcenter",
                    remoting_path="patchgate/ws2025-prod/windows/default",
                    vm_paths={"vm3": "patchgate/other-lab/windows/default"},
                    leases_path="patchgate-leases", signing_key="patchgate-verdicts")

    provider = build_secrets(lab.secrets, lab)
    session = provider.session  # type: ignore[attr-defined]
    try:
        assert provider.hypervisor_credentials().username == "svc@vsphere.local"
        assert provider.remoting_credentials(lab.vm("vm0")).username == "CONTOSO\\svc"
        with pytest.raises(SecretsError, match="permission denied"):
            provider.remoting_credentials(lab.vm("vm3"))  # another lab's secret

        leases = build_lease_manager(lab, session=session)
        lease = leases.acquire(["vm0", "vm1"], "doc-run", timeout=5, auto_renew=False)
        lease.renew()
        assert [i.vm for i in leases.list_leases()] == ["vm0", "vm1"]
        lease.release()
        assert leases.list_leases() == []

        gate = tmp_path / "gate.json"
        gate.write_text('{"verdict": "approve"}')
        signer = VerdictSigner.from_lab(lab, session=session)
        assert signer is not None
        signer.sign_run([gate], tmp_path)
        assert verify_online(session, gate)
        assert verify_offline(gate, None, tmp_path / "patchgate-verdicts.v1.pub.pem")

        # nothing outside the leases prefix is writable, and no other transit key is usable
        with pytest.raises(hvac.exceptions.Forbidden):
            session.client.secrets.kv.v2.create_or_update_secret("patchgate/ws2025-prod/vcenter",
                                                                  {"username": "x", "password": "y"})
        with pytest.raises(hvac.exceptions.Forbidden):
            session.client.secrets.transit.sign_data("other-key", hash_input="YQ==")
    finally:
        provider.close()
