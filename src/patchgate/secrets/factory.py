"""Pick the secrets provider the lab file asks for."""

from __future__ import annotations

from patchgate.config.lab import EnvSecrets, Lab, Secrets, TwinSecrets, VaultSecrets
from patchgate.errors import ConfigError
from patchgate.secrets.base import SecretsProvider


def build_secrets(model: Secrets, lab: Lab | None = None) -> SecretsProvider:
    """``model`` is ``lab.secrets``; ``lab`` supplies the hypervisor's fallback credentials path."""
    if isinstance(model, EnvSecrets):
        from patchgate.secrets.env import EnvSecretsProvider

        return EnvSecretsProvider(model.settings)
    if isinstance(model, VaultSecrets):
        from patchgate.secrets.vault import VaultSecretsProvider

        return VaultSecretsProvider(model.settings, lab)
    if isinstance(model, TwinSecrets):
        from patchgate_twin.secrets import TwinSecretsProvider

        return TwinSecretsProvider()
    source = str(lab.source) if lab is not None and lab.source else None
    raise ConfigError(f"unknown secrets kind {getattr(model, 'kind', model)!r}", file=source,
                      field="secrets.kind")
