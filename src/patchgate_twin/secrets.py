"""The twin lab's credentials: random per run, never configured, never written anywhere.

The twin's WSMan endpoint checks HTTP Basic auth against :meth:`TwinSecretsProvider.check`, and the
harness logs in with :meth:`TwinSecretsProvider.remoting_credentials`, so the twin exercises the same
authentication path as a production lab, including a wrong-password failure.

Everything derives from one random seed per process (HMAC-SHA256 of the seed and the VM name), so an
endpoint running in a child process agrees with the harness when it inherits ``env()``
(``PATCHGATE_TWIN_SEED``). The seed and every password are registered with the redactor; usernames are
not secret and stay visible in errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading

from pydantic import SecretStr

from patchgate.config.lab import VmSpec
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

SEED_ENV = "PATCHGATE_TWIN_SEED"

_seed_lock = threading.Lock()
_process_seed: str | None = None


def process_seed() -> str:
    """The seed shared by every twin provider in this process (from PATCHGATE_TWIN_SEED if set)."""
    global _process_seed
    with _seed_lock:
        if _process_seed is None:
            _process_seed = os.environ.get(SEED_ENV) or secrets.token_hex(32)
            redactor.register(_process_seed)
        return _process_seed


class TwinSecretsProvider:
    kind = "twin"

    def __init__(self, seed: str | None = None) -> None:
        self._seed = seed or process_seed()
        redactor.register(self._seed)
        self.username = "pg-" + self._derive("username")[:8].lower()

    def _derive(self, label: str) -> str:
        digest = hmac.new(self._seed.encode(), label.encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").rstrip("=")

    def _password(self, label: str) -> str:
        # Windows complexity rules: upper, lower, digit and symbol, well over 14 characters.
        body = self._derive(label)
        return f"Tw1n!{body[:12]}{body[12:24].lower()}"

    def credentials_for(self, vm_name: str) -> Credentials:
        """The Basic-auth credentials the twin endpoint of ``vm_name`` accepts."""
        password = self._password(f"remoting:{vm_name}")
        redactor.register_credentials(self.username, password)
        return Credentials(username=self.username, password=SecretStr(password))

    def check(self, vm_name: str, username: str, password: str) -> bool:
        """Constant-time check of a Basic-auth pair, for the twin's WSMan endpoint."""
        expected = self.credentials_for(vm_name)
        user_ok = hmac.compare_digest(username.encode(), expected.username.encode())
        pass_ok = hmac.compare_digest(password.encode(), expected.password.get_secret_value().encode())
        return user_ok and pass_ok

    def env(self) -> dict[str, str]:
        """Environment for a child process (e.g. an out-of-process twin endpoint) to agree on credentials."""
        return {SEED_ENV: self._seed}

    def hypervisor_credentials(self) -> Credentials:
        password = self._password("hypervisor")
        redactor.register_credentials(self.username, password)
        return Credentials(username=self.username, password=SecretStr(password))

    def remoting_credentials(self, vm: VmSpec) -> Credentials:
        return self.credentials_for(vm.name)

    def close(self) -> None:
        """Nothing to revoke: the credentials die with the process."""
