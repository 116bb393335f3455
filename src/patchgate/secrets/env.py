"""Credentials from environment variables: the simplest provider, for labs whose CI injects secrets.

The lab file names the variables (``EnvSecretsSettings``); values never live in a lab file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import SecretStr

from patchgate.config.lab import ENGINE_REMOTING, EnvSecretsSettings, Lab, VmSpec
from patchgate.errors import ConfigError, SecretsError
from patchgate.labkinds import lab_kind
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import MIN_SECRET_LENGTH, redactor


class EnvSecretsProvider:
    kind = "env"

    def __init__(self, settings: EnvSecretsSettings | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings or EnvSecretsSettings()
        self._environ = environ if environ is not None else os.environ

    def _pair(self, user_var: str, password_var: str, what: str, vm: str | None = None) -> Credentials:
        username = self._environ.get(user_var, "")
        if not username:
            raise SecretsError(f"{what} username is not set: export {user_var}", vm=vm)
        password = self._environ.get(password_var, "")
        if not password:
            raise SecretsError(f"{what} password is not set: export {password_var}", vm=vm)
        if len(password) < MIN_SECRET_LENGTH:
            raise SecretsError(f"{what} password in {password_var} is shorter than {MIN_SECRET_LENGTH} "
                               "characters, too short to be masked safely in logs and reports", vm=vm)
        redactor.register_credentials(username, password)
        return Credentials(username=username, password=SecretStr(password))

    def hypervisor_credentials(self) -> Credentials:
        s = self.settings
        return self._pair(s.hypervisor_username_var, s.hypervisor_password_var, "hypervisor")

    def remoting_credentials(self, vm: VmSpec) -> Credentials:
        s = self.settings
        what = f"remoting credentials for VM {vm.name}:"
        return self._pair(s.username_var, s.password_var, what, vm=vm.name)

    def share_credentials(self, reference: str) -> Credentials:
        """The account that reads the lab's share (``staging.share.credentials``): ``<REF>_USERNAME`` and
        ``<REF>_PASSWORD``, the reference upper-cased with every other character than A-Z, 0-9 made ``_``."""
        prefix = share_variable_prefix(reference)
        return self._pair(f"{prefix}_USERNAME", f"{prefix}_PASSWORD", f"the share account '{reference}':")

    def close(self) -> None:
        """Nothing to revoke."""


def share_variable_prefix(reference: str) -> str:
    """``lab/share-reader`` -> ``LAB_SHARE_READER``: the prefix of the share account's two variables."""
    return re.sub(r"[^A-Z0-9]", "_", reference.upper())


def missing_env_credentials(lab: Lab, environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables an env-secrets lab needs that are unset or empty: the hypervisor login (unless the
    hypervisor's kind needs none) and the guests' login (not for a remoting the lab's kind serves itself)."""
    if lab.secrets.kind != "env":
        return []
    environ = environ if environ is not None else os.environ
    s = lab.secrets.settings or EnvSecretsSettings()
    needed = []
    if lab_kind(lab.hypervisor.kind).needs_hypervisor_login:
        needed += [s.hypervisor_username_var, s.hypervisor_password_var]
    if lab.remoting.kind in ENGINE_REMOTING:
        needed += [s.username_var, s.password_var]
    share = lab.staging.share if lab.staging.source == "share" else None
    if share is not None and share.credentials:
        prefix = share_variable_prefix(share.credentials)
        needed += [f"{prefix}_USERNAME", f"{prefix}_PASSWORD"]
    return [name for name in needed if not environ.get(name)]


def require_env_credentials(lab: Lab) -> None:
    """A credential the lab reads from the environment and nobody set is bad input (exit 4), said once before
    the run starts, not lab trouble repeated by every check."""
    missing = missing_env_credentials(lab)
    if missing:
        raise ConfigError(f"secrets.kind is env but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                          f"not set: export {' '.join(missing)} (docs/lab-file.md, secrets)",
                          file=str(lab.source) if lab.source else None)
