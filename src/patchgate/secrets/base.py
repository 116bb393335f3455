"""Credentials and the provider protocol; secret values are wrapped so repr() never shows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import SecretStr

from patchgate.config.lab import VmSpec


@dataclass(frozen=True)
class Credentials:
    username: str
    password: SecretStr = field(repr=False)

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r}, password='**********')"


def credential_pair(credentials: Any) -> tuple[str, str]:
    """Accept ``Credentials`` (password as SecretStr) or a plain (username, password) pair."""
    if isinstance(credentials, tuple):
        return str(credentials[0]), str(credentials[1])
    password = credentials.password
    secret = password.get_secret_value() if hasattr(password, "get_secret_value") else str(password)
    return str(credentials.username), secret


@runtime_checkable
class SecretsProvider(Protocol):
    """Every value returned is registered with the redactor before it is handed out."""

    kind: str

    def hypervisor_credentials(self) -> Credentials:
        """Credentials for vCenter / Hyper-V host."""

    def remoting_credentials(self, vm: VmSpec) -> Credentials:
        """Credentials for one VM (per VM, else per role, else lab default)."""

    def close(self) -> None:
        """Revoke tokens / stop renewal; safe to call twice."""


def share_credentials(provider: SecretsProvider, reference: str) -> Credentials:
    """The account of ``staging.share.credentials`` from a provider that keeps such accounts (env, vault: their
    ``share_credentials``); a provider without them is a SecretsError naming its kind."""
    from patchgate.errors import SecretsError

    read = getattr(provider, "share_credentials", None)
    if read is None:
        raise SecretsError(f"secrets kind '{provider.kind}' keeps no share accounts: read "
                           f"staging.share.credentials '{reference}' from env or vault secrets (docs/vault.md)")
    return read(reference)
