"""Twin faults 'vault-unreachable' and 'vault-sealed': Vault fails in the middle of the run.

The fault fires the first time the faulty VM's remoting credentials are needed (its connect step, after it was
reverted and booted), and it breaks Vault for real rather than faking an answer: 'vault-unreachable' points the
run's Vault client at a closed loopback port, 'vault-sealed' seals the Vault server (only one on 127.0.0.1, a test
Vault: the twin never seals a shared one). The provider's credential cache is dropped, so every later read goes to
the broken Vault through the ordinary hvac code and its error translation.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any
from urllib.parse import urlparse

from patchgate.config.lab import VmSpec
from patchgate.errors import SecretsError
from patchgate.secrets.base import Credentials

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: connections are refused


class _NoCache(dict):
    """A credential cache that keeps nothing."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class VaultFaultSecrets:
    """Wraps the run's secrets provider; everything but the fault delegates to it."""

    def __init__(self, inner: Any, twin: Any) -> None:
        self.inner = inner
        self.twin = twin
        self._fired = False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def remoting_credentials(self, vm: VmSpec) -> Credentials:
        for kind in ("vault-unreachable", "vault-sealed"):
            if self.twin.has_fault(vm.name, kind):
                self._fire(kind, vm.name)
        return self.inner.remoting_credentials(vm)

    def _fire(self, kind: str, vm: str) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
            session = getattr(self.inner, "session", None)
            client = getattr(session, "client", None)
            if client is None:
                raise SecretsError(f"twin fault '{kind}' needs a lab whose secrets come from Vault "
                                   f"(secrets.kind is '{getattr(self.inner, 'kind', '?')}')", vm=vm)
            if isinstance(getattr(self.inner, "_cache", None), dict):
                self.inner._cache = _NoCache()  # from now on every read asks Vault, even one racing with this
            if kind == "vault-unreachable":
                log.warning("twin fault vault-unreachable on %s: Vault stops answering", vm)
                client.url = f"http://127.0.0.1:{_closed_port()}"
                return
            host = urlparse(str(client.url)).hostname or ""
            if host not in LOOPBACK:
                raise SecretsError(f"twin fault 'vault-sealed' seals only a Vault on 127.0.0.1 (a test Vault), "
                                   f"not {client.url}", vm=vm)
            log.warning("twin fault vault-sealed on %s: sealing the test Vault at %s", vm, client.url)
            try:
                client.sys.seal()
            except Exception as exc:  # noqa: BLE001 - the run's token may not have sudo on sys/seal
                raise SecretsError(f"twin fault 'vault-sealed' could not seal the Vault at {client.url}: "
                                   f"{exc.__class__.__name__}", vm=vm) from None
