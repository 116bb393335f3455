"""Pick the secrets provider the lab file asks for."""

from __future__ import annotations

from patchgate.config.lab import EnvSecrets, Lab, Secrets, VaultSecrets
from patchgate.errors import ConfigError
from patchgate.labkinds import known_kinds, lab_kind
from patchgate.secrets.base import SecretsProvider


def build_secrets(model: Secrets, lab: Lab | None = None) -> SecretsProvider:
    """``model`` is ``lab.secrets``; ``lab`` supplies the hypervisor's fallback credentials path."""
    if isinstance(model, EnvSecrets):
        from patchgate.secrets.env import EnvSecretsProvider

        return EnvSecretsProvider(model.settings)
    if isinstance(model, VaultSecrets):
        from patchgate.secrets.vault import VaultSecretsProvider

        return VaultSecretsProvider(model.settings, lab)
    source = str(lab.source) if lab is not None and lab.source else None
    kind = getattr(model, "kind", None)
    if kind in known_kinds():  # a lab kind that keeps its own accounts (made per run, say)
        return lab_kind(kind, source=source).build_secrets(model)
    raise ConfigError(f"unknown secrets kind {getattr(model, 'kind', model)!r}", file=source,
                      field="secrets.kind")
