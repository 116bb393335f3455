"""Credentials from a Vault (or OpenBao) KV v2 engine through hvac.

Paths come from the lab: ``vm_paths[vm]`` over ``role_paths[role]`` over ``remoting_path``; the
hypervisor's from ``hypervisor_path`` (or the hypervisor's own ``credentials_path``). Each secret holds
the keys ``username`` and ``password``. Every value is registered with the redactor before it is
returned, and each path is read once per run (many VMs share a role's path).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydantic import SecretStr

from patchgate.config.lab import Lab, VaultSecretsSettings, VmSpec
from patchgate.errors import SecretsError
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import MIN_SECRET_LENGTH, redactor
from patchgate.secrets.vault_session import VaultSession

log = logging.getLogger(__name__)

USERNAME_KEY = "username"
PASSWORD_KEY = "password"


class VaultSecretsProvider:
    kind = "vault"

    def __init__(self, settings: VaultSecretsSettings, lab: Lab | None = None, *,
                 session: VaultSession | None = None) -> None:
        self.settings = settings
        self.lab = lab
        self._owns_session = session is None
        self.session = session or VaultSession(settings)
        self._cache: dict[str, Credentials] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ facts the gate records

    @property
    def address(self) -> str:
        return self.session.address

    @property
    def cert_validation(self) -> bool:
        """False only when the lab turned TLS checking off explicitly; the gate records it."""
        return self.session.cert_validation

    # ------------------------------------------------------------ paths

    def hypervisor_path(self) -> str:
        path = self.settings.hypervisor_path
        if not path and self.lab is not None:
            path = getattr(self.lab.hypervisor.settings, "credentials_path", None)
        if not path:
            raise SecretsError("no Vault path for hypervisor credentials: set "
                               "secrets.settings.hypervisor_path in the lab file")
        return path

    def remoting_path(self, vm: VmSpec) -> str:
        s = self.settings
        path = s.vm_paths.get(vm.name) or s.role_paths.get(vm.role) or s.remoting_path
        if not path:
            raise SecretsError(f"no Vault path for the credentials of VM {vm.name} (role {vm.role}): set "
                               "secrets.settings.vm_paths, role_paths or remoting_path", vm=vm.name)
        return path

    # ------------------------------------------------------------ reads

    def read(self, path: str, *, vm: str | None = None) -> Credentials:
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None:
            return cached
        data = self._read_data(path, vm=vm)
        username = self._key(data, path, USERNAME_KEY, vm)
        password = self._key(data, path, PASSWORD_KEY, vm)
        redactor.register_credentials(username, password)  # before anyone else sees them
        if len(password) < MIN_SECRET_LENGTH:
            raise SecretsError(f"the '{PASSWORD_KEY}' at '{self._where(path)}' is shorter than "
                               f"{MIN_SECRET_LENGTH} characters, too short to be masked safely", vm=vm)
        creds = Credentials(username=username, password=SecretStr(password))
        with self._lock:
            self._cache[path] = creds
        return creds

    def _where(self, path: str) -> str:
        return f"{self.settings.kv_mount}/{path}"

    def _read_data(self, path: str, *, vm: str | None) -> dict[str, Any]:
        try:
            reply = self.session.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self.settings.kv_mount, raise_on_deleted_version=True)
        except Exception as exc:  # noqa: BLE001 - translated to SecretsError naming the path
            self.session.fail(exc, path=self._where(path), action="read", error=SecretsError, vm=vm)
        data = (reply or {}).get("data", {}).get("data")
        if not isinstance(data, dict):
            raise SecretsError(f"no secret data at '{self._where(path)}' in Vault at {self.address}", vm=vm)
        # register every string first: a wrong key name must not leave a neighbour's value unmasked
        for value in data.values():
            if isinstance(value, str):
                redactor.register(value)
        return data

    def _key(self, data: dict[str, Any], path: str, key: str, vm: str | None) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            present = ", ".join(sorted(data)) or "none"
            raise SecretsError(f"secret at '{self._where(path)}' has no non-empty string key '{key}' "
                               f"(keys present: {present})", vm=vm)
        return value

    # ------------------------------------------------------------ SecretsProvider

    def hypervisor_credentials(self) -> Credentials:
        return self.read(self.hypervisor_path())

    def remoting_credentials(self, vm: VmSpec) -> Credentials:
        return self.read(self.remoting_path(vm), vm=vm.name)

    def share_credentials(self, reference: str) -> Credentials:
        """The account that reads the lab's share: ``reference`` is a KV path holding username and password."""
        return self.read(reference)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()
