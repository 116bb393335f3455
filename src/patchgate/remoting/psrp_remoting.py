"""The psrp remoting as a run holds it: its settings and TLS posture at once, pypsrp loaded on a thread.

Loading pypsrp (with requests, spnego and cryptography) takes about a fifth of a second, and a run needs it
only when its first VM has reverted and booted. The load runs on a thread once every VM's lifecycle has started
(``prepare``), while the lab reverts: neither the leases nor the first reverts wait for it (a load beside them
takes the interpreter lock from every file operation they make); ``open`` waits for it if it is not done yet
(Python's import lock does).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

from patchgate.config.lab import PsrpSettings
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.logging_hygiene import quiet_transport_loggers
from patchgate.secrets.base import Credentials

if TYPE_CHECKING:
    from patchgate.remoting.psrp import PsrpSession

SESSION_MODULE = "patchgate.remoting.psrp"


def _load_session_module() -> None:
    try:
        importlib.import_module(SESSION_MODULE)
    except Exception:  # noqa: S110 - the same import runs again in open() and raises there, naming the cause
        pass


class PsrpRemoting:
    """``Remoting`` over WSMan. ``cert_validation`` is what the gate records about the lab's TLS posture."""

    kind = "psrp"

    def __init__(self, settings: PsrpSettings | None = None) -> None:
        self.settings = settings or PsrpSettings()
        self.cert_validation = bool(self.settings.ssl and self.settings.cert_validation)
        quiet_transport_loggers()
        self._loading: threading.Thread | None = None

    def prepare(self) -> None:
        if self._loading is None:
            # not a daemon: the interpreter waits for the import at exit rather than ending the thread inside
            # it (a thread ended in the middle of an extension module's Rust code aborts the whole process)
            self._loading = threading.Thread(target=_load_session_module, name="patchgate-load-pypsrp")
            self._loading.start()

    def open(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials) -> "PsrpSession":
        from patchgate.remoting.psrp import PsrpSession

        session = PsrpSession(vm_name, endpoint, credentials, self.settings)
        session.connect()
        return session
