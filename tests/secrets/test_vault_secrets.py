"""The Vault provider against a real OpenBao dev server: auth methods, path precedence, failures."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
import uuid
from pathlib import Path

import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from support.labs import vault_lab
from support.waiting import wait_until
from support.openbao import OpenBao, ensure_auth, make_approle

from patchgate.errors import SecretsError
from patchgate.secrets import build_secrets
from patchgate.secrets.redact import MASK, redactor
from patchgate.secrets.vault import VaultSecretsProvider


@pytest.fixture
def prefix(openbao: OpenBao) -> str:
    """A fresh KV prefix per test, with the four kinds of path a lab uses."""
    root = f"labs/{uuid.uuid4().hex[:8]}"
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{root}/default", {"username": "lab\\default", "password": "pw-default-1x"})
    kv.create_or_update_secret(f"{root}/wsus", {"username": "lab\\wsus", "password": "pw-wsus-2y"})
    kv.create_or_update_secret(f"{root}/vm2", {"username": "lab\\vm2", "password": "pw-vm2-3z"})
    kv.create_or_update_secret(f"{root}/hv", {"username": "administrator@vsphere.local",
                                              "password": "pw-hv-4w"})
    return root


def paths(prefix: str) -> dict[str, object]:
    return {"remoting_path": f"{prefix}/default", "role_paths": {"wsus-server": f"{prefix}/wsus"},
            "vm_paths": {"vm2": f"{prefix}/vm2"}, "hypervisor_path": f"{prefix}/hv"}


def token_provider(openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch, **extra: object):
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(openbao.address, **{**paths(prefix), **extra})
    provider = build_secrets(lab.secrets, lab)
    assert isinstance(provider, VaultSecretsProvider)
    return lab, provider


def test_token_auth_path_precedence_vm_over_role_over_default(
        openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, provider = token_provider(openbao, prefix, monkeypatch)
    try:
        assert provider.remoting_credentials(lab.vm("vm0")).username == "lab\\default"  # hotpatch-member
        assert provider.remoting_credentials(lab.vm("vm1")).username == "lab\\wsus"     # wsus-server role
        vm2 = provider.remoting_credentials(lab.vm("vm2"))                              # per-VM path
        assert vm2.username == "lab\\vm2"
        assert vm2.password.get_secret_value() == "pw-vm2-3z"
        assert provider.hypervisor_credentials().password.get_secret_value() == "pw-hv-4w"
        for value in ("pw-default-1x", "pw-wsus-2y", "pw-vm2-3z", "pw-hv-4w"):
            assert redactor.redact(value) == MASK
        assert provider.cert_validation is True
    finally:
        provider.close()
        provider.close()  # idempotent


def test_a_share_account_is_read_from_its_kv_path_and_masked(
        openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``staging.share.credentials`` of a vault lab is a KV path (docs/vault.md, "The share's account")."""
    from patchgate.secrets.base import share_credentials

    password = "pw-share-" + secrets.token_hex(6)
    openbao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/share", {"username": "lab\\dist",
                                                                             "password": password})
    _lab, provider = token_provider(openbao, prefix, monkeypatch)
    try:
        account = share_credentials(provider, f"{prefix}/share")
        assert account.username == "lab\\dist" and account.password.get_secret_value() == password
        assert redactor.redact(f"x {password} y") == f"x {MASK} y" and password not in repr(account)
        with pytest.raises(SecretsError, match=f"{prefix}/nothing-here") as info:
            share_credentials(provider, f"{prefix}/nothing-here")
        assert password not in str(info.value)
    finally:
        provider.close()


def test_vault_addr_from_environment(openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(None, **paths(prefix))  # type: ignore[arg-type]
    provider = build_secrets(lab.secrets, lab)
    try:
        assert provider.remoting_credentials(lab.vm("vm3")).username == "lab\\default"
    finally:
        provider.close()


def test_missing_path_names_the_path(openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, provider = token_provider(openbao, prefix, monkeypatch,
                                   vm_paths={"vm3": f"{prefix}/does-not-exist"})
    try:
        with pytest.raises(SecretsError, match=f"no secret at 'secret/{prefix}/does-not-exist'") as info:
            provider.remoting_credentials(lab.vm("vm3"))
        assert info.value.vm == "vm3"
    finally:
        provider.close()


def test_missing_key_names_path_and_key_never_the_value(
        openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "canary-" + secrets.token_hex(8)
    openbao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/nokey",
                                                           {"username": "u", "pasword": canary})
    lab, provider = token_provider(openbao, prefix, monkeypatch, vm_paths={"vm0": f"{prefix}/nokey"})
    try:
        with pytest.raises(SecretsError) as info:
            provider.remoting_credentials(lab.vm("vm0"))
        message = str(info.value)
        assert f"secret/{prefix}/nokey" in message and "'password'" in message
        assert canary not in message
        assert redactor.redact(canary) == MASK  # the misnamed key's value is still masked
    finally:
        provider.close()


def test_no_path_configured_is_a_clear_error(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(openbao.address)
    provider = build_secrets(lab.secrets, lab)
    try:
        with pytest.raises(SecretsError, match="vm_paths, role_paths or remoting_path"):
            provider.remoting_credentials(lab.vm("vm0"))
        with pytest.raises(SecretsError, match="hypervisor_path"):
            provider.hypervisor_credentials()
    finally:
        provider.close()


def test_bad_token_is_refused(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = "hvs.bogus-" + secrets.token_hex(8)
    monkeypatch.setenv("VAULT_TOKEN", bogus)
    lab = vault_lab(openbao.address)
    with pytest.raises(SecretsError, match="permission denied|refused") as info:
        build_secrets(lab.secrets, lab)
    assert bogus not in str(info.value)


def test_missing_token_names_the_variable(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.vault-token either
    lab = vault_lab(openbao.address)
    with pytest.raises(SecretsError, match="VAULT_TOKEN"):
        build_secrets(lab.secrets, lab)


def test_unreachable_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("VAULT_TOKEN", "hvs.whatever-1234")
    lab = vault_lab(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(SecretsError, match=f"Vault at http://127.0.0.1:{port} is unreachable"):
        build_secrets(lab.secrets, lab)


def test_sealed_vault(openbao_private: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = openbao_private.client()
    admin.secrets.kv.v2.create_or_update_secret("lab/default", {"username": "u", "password": "pw-sealed-1"})
    monkeypatch.setenv("VAULT_TOKEN", openbao_private.root_token)
    lab = vault_lab(openbao_private.address, remoting_path="lab/default")
    provider = build_secrets(lab.secrets, lab)
    try:
        admin.sys.seal()
        with pytest.raises(SecretsError, match="sealed") as info:
            provider.remoting_credentials(lab.vm("vm0"))
        assert "secret/lab/default" in str(info.value)
    finally:
        provider.close()


def test_cert_validation_off_is_explicit_and_exposed(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(openbao.address, cert_validation=False)
    provider = build_secrets(lab.secrets, lab)
    try:
        assert provider.cert_validation is False
        assert "validation for Vault" in caplog.text and "OFF" in caplog.text
    finally:
        provider.close()


def test_missing_ca_bundle_is_named(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(openbao.address, ca_bundle=str(tmp_path / "nope.pem"))
    with pytest.raises(SecretsError, match="nope.pem"):
        build_secrets(lab.secrets, lab)


# ---------------------------------------------------------------- AppRole


def test_approle_from_files_policy_limited(openbao: OpenBao, prefix: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    role = "pg-" + uuid.uuid4().hex[:8]
    policy = f'path "secret/data/{prefix}/default" {{ capabilities = ["read"] }}'
    role_id, secret_id = make_approle(openbao.client(), role, policy, token_ttl="30s")
    (tmp_path / "role_id").write_text(role_id + "\n")
    (tmp_path / "secret_id").write_text(secret_id + "\n")
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    lab = vault_lab(openbao.address, **paths(prefix),
                    auth={"method": "approle", "role_id_file": str(tmp_path / "role_id"),
                          "secret_id_file": str(tmp_path / "secret_id")})
    provider = build_secrets(lab.secrets, lab)
    assert isinstance(provider, VaultSecretsProvider)
    session = provider.session
    try:
        assert provider.remoting_credentials(lab.vm("vm0")).username == "lab\\default"
        with pytest.raises(SecretsError, match="permission denied") as info:
            provider.remoting_credentials(lab.vm("vm2"))
        assert f"secret/{prefix}/vm2" in str(info.value)
        assert redactor.redact(secret_id) == MASK
        # a renewable 30 s token gets a renewer thread; renewing now works and keeps a positive TTL
        assert session.token_renewable and session._renewer is not None and session._renewer.is_alive()
        assert session.renew_token() > 0
        token = session.client.token
    finally:
        provider.close()
    assert session._renewer is not None and not session._renewer.is_alive()
    with pytest.raises(hvac.exceptions.Forbidden):  # the token we created by logging in was revoked
        openbao.client(token=token).auth.token.lookup_self()


def test_approle_from_env_with_wrong_secret_id(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    role = "pg-" + uuid.uuid4().hex[:8]
    role_id, _ = make_approle(openbao.client(), role, 'path "secret/data/x" { capabilities = ["read"] }')
    wrong = "00000000-1111-2222-3333-" + secrets.token_hex(6)
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", wrong)
    lab = vault_lab(openbao.address, auth={"method": "approle"})
    with pytest.raises(SecretsError, match="auth/approle/login") as info:
        build_secrets(lab.secrets, lab)
    assert wrong not in str(info.value)


def test_approle_missing_secret_id_names_variable(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ROLE_ID", "whatever")
    monkeypatch.delenv("VAULT_SECRET_ID", raising=False)
    lab = vault_lab(openbao.address, auth={"method": "approle"})
    with pytest.raises(SecretsError, match="VAULT_SECRET_ID"):
        build_secrets(lab.secrets, lab)


# ---------------------------------------------------------------- JWT (a CI job's OIDC token)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _rs256_jwt(key: rsa.RSAPrivateKey, claims: dict[str, object]) -> str:
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "ci"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64url(signature)}"


def test_jwt_login_with_ci_token(openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = openbao.client()
    mount = "jwt-" + uuid.uuid4().hex[:6]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    ensure_auth(admin, "jwt", path=mount)
    admin.auth.jwt.configure(jwt_validation_pubkeys=[public_pem], bound_issuer="https://ci.example.test",
                             path=mount)
    policy = f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}'
    admin.sys.create_or_update_policy(name=mount, policy=policy)
    admin.auth.jwt.create_role(name="patchgate", role_type="jwt", user_claim="sub",
                               bound_audiences=["patchgate"], bound_claims={"project": "windows-updates"},
                               token_policies=[mount], token_ttl="10m", allowed_redirect_uris=[], path=mount)
    now = int(time.time())
    claims = {"iss": "https://ci.example.test", "sub": "project:windows-updates:job:42", "aud": "patchgate",
              "project": "windows-updates", "iat": now, "nbf": now - 5, "exp": now + 300}
    monkeypatch.setenv("CI_JOB_JWT", _rs256_jwt(key, claims))
    lab = vault_lab(openbao.address, **paths(prefix),
                    auth={"method": "jwt", "role": "patchgate", "mount": mount, "jwt_env": "CI_JOB_JWT"})
    provider = build_secrets(lab.secrets, lab)
    try:
        assert provider.remoting_credentials(lab.vm("vm1")).username == "lab\\wsus"
        assert mount in provider.session.token_policies
    finally:
        provider.close()

    # a token from another project is refused, with the role and mount named
    monkeypatch.setenv("CI_JOB_JWT", _rs256_jwt(key, {**claims, "project": "other"}))
    with pytest.raises(SecretsError, match=f"JWT role 'patchgate'.*auth/{mount}/login"):
        build_secrets(lab.secrets, lab)


def test_renewer_thread_renews_short_token_in_background(openbao: OpenBao,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import patchgate.secrets.vault_session as vs

    monkeypatch.setattr(vs, "MIN_RENEW_INTERVAL", 0.2)
    role = "pg-" + uuid.uuid4().hex[:8]
    policy = 'path "secret/data/x" { capabilities = ["read"] }'
    role_id, secret_id = make_approle(openbao.client(), role, policy, token_ttl="2s", token_max_ttl="10m")
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    session = vs.VaultSession(vault_lab(openbao.address, auth={"method": "approle"}).secrets.settings)
    try:
        admin = openbao.client()
        # the server's record of the token shows a renewal
        wait_until(lambda: admin.auth.token.lookup(session.client.token)["data"].get("last_renewal_time"),
                   "the renewer thread never renewed the token", timeout=30, interval=0.1)
    finally:
        session.close()


def test_vault_reads_go_on_while_another_thread_rewrites_the_environment(
        openbao: OpenBao, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest rewrites os.environ at every test phase while the lab's threads read Vault (patchgate.environ_race):
    the session's HTTP client read its proxy and CA settings once, so no read meets a half-walked environment."""
    from support.environ_churn import environ_churn

    lab, provider = token_provider(openbao, prefix, monkeypatch)
    try:
        with environ_churn():
            names = {provider.remoting_credentials(lab.vm("vm2")).username for _ in range(100)}
        assert names == {"lab\\vm2"}
    finally:
        provider.close()
