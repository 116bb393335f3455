"""The env and twin providers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.labs import make_lab

from patchgate.config.lab import EnvSecretsSettings, VmSpec
from patchgate.errors import SecretsError
from patchgate.secrets import build_secrets
from patchgate.secrets.base import SecretsProvider
from patchgate.secrets.env import EnvSecretsProvider
from patchgate.secrets.redact import MASK, redactor
from patchgate_twin.secrets import SEED_ENV, TwinSecretsProvider

VM = VmSpec(name="ws1", role="member", snapshot="base", image="ws2025")


def test_env_provider_reads_named_variables_and_registers_password() -> None:
    settings = EnvSecretsSettings(username_var="LAB_USER", password_var="LAB_PW")
    env = {"LAB_USER": "CONTOSO\\svc-patch", "LAB_PW": "env-pw-8c1f2a",
           "PATCHGATE_HYPERVISOR_USERNAME": "administrator@vsphere.local",
           "PATCHGATE_HYPERVISOR_PASSWORD": "hv-pw-77d2e0"}
    provider = EnvSecretsProvider(settings, env)
    creds = provider.remoting_credentials(VM)
    assert creds.username == "CONTOSO\\svc-patch"
    assert creds.password.get_secret_value() == "env-pw-8c1f2a"
    assert redactor.redact("x env-pw-8c1f2a y") == f"x {MASK} y"
    assert provider.hypervisor_credentials().username == "administrator@vsphere.local"
    assert isinstance(provider, SecretsProvider)


@pytest.mark.parametrize("missing", ["LAB_USER", "LAB_PW"])
def test_env_provider_names_missing_variable(missing: str) -> None:
    env = {"LAB_USER": "u", "LAB_PW": "env-pw-1234"}
    del env[missing]
    provider = EnvSecretsProvider(EnvSecretsSettings(username_var="LAB_USER", password_var="LAB_PW"), env)
    with pytest.raises(SecretsError, match=missing) as info:
        provider.remoting_credentials(VM)
    assert info.value.vm == "ws1"
    assert "env-pw-1234" not in str(info.value)


def test_env_provider_refuses_unmaskable_password() -> None:
    env = {"PATCHGATE_USERNAME": "u", "PATCHGATE_PASSWORD": "ab"}
    provider = EnvSecretsProvider(EnvSecretsSettings(), env)
    with pytest.raises(SecretsError, match="too short"):
        provider.remoting_credentials(VM)


def test_twin_credentials_are_per_vm_stable_and_checked() -> None:
    twin = TwinSecretsProvider()
    first = twin.credentials_for("ws1")
    assert twin.credentials_for("ws1") == first
    other = twin.credentials_for("ws2")
    assert other.password.get_secret_value() != first.password.get_secret_value()
    assert twin.check("ws1", first.username, first.password.get_secret_value())
    assert not twin.check("ws1", first.username, other.password.get_secret_value())
    assert not twin.check("ws1", "Administrator", first.password.get_secret_value())
    assert redactor.redact(first.password.get_secret_value()) == MASK
    assert twin.remoting_credentials(VM) == first
    assert len(first.password.get_secret_value()) >= 14


def test_twin_seed_differs_per_provider_seed_and_reaches_child_process() -> None:
    twin = TwinSecretsProvider(seed="f" * 64)
    assert TwinSecretsProvider(seed="e" * 64).credentials_for("ws1") != twin.credentials_for("ws1")
    code = ("import json; from patchgate_twin.secrets import TwinSecretsProvider as T; "
            "c = T().credentials_for('ws1'); print(json.dumps([c.username, c.password.get_secret_value()]))")
    env = {**os.environ, **twin.env()}
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected = twin.credentials_for("ws1")
    assert json.loads(child.stdout) == [expected.username, expected.password.get_secret_value()]
    assert SEED_ENV in twin.env()


def test_factory_builds_the_kind_the_lab_asks_for() -> None:
    lab = make_lab({"kind": "twin"})
    assert isinstance(build_secrets(lab.secrets, lab), TwinSecretsProvider)
    lab = make_lab({"kind": "env"})
    assert isinstance(build_secrets(lab.secrets, lab), EnvSecretsProvider)


def test_env_share_account_variables_are_named_by_the_reference_and_required_up_front() -> None:
    from patchgate.config.staging import Staging
    from patchgate.secrets.env import missing_env_credentials

    env = {"DIST_READER_USERNAME": "CONTOSO\\svc-dist", "DIST_READER_PASSWORD": "share-pw-5e1b"}
    account = EnvSecretsProvider(EnvSecretsSettings(), env).share_credentials("dist/reader")
    assert account.username == "CONTOSO\\svc-dist" and redactor.redact("share-pw-5e1b") == MASK
    lab = make_lab({"kind": "env"}).model_copy(update={"staging": Staging(
        source="share", share={"path": r"\\dist01\packages", "credentials": "dist/reader"})})
    assert {"DIST_READER_USERNAME", "DIST_READER_PASSWORD"} <= set(missing_env_credentials(lab, environ={}))
    assert not {"DIST_READER_USERNAME", "DIST_READER_PASSWORD"} & set(missing_env_credentials(lab, environ=env))
