"""Keep scripts and credentials out of transport logs.

pypsrp logs whole scripts at INFO/DEBUG (``Client.execute_ps``, the WSMan message dumps), requests/urllib3
log URLs and headers at DEBUG, and paramiko logs auth details. Their loggers are pinned to WARNING and
every one of them gets the process-wide RedactingFilter, because a logger's filter only sees records
created on that exact logger (not ones propagated from children), so each child is listed.
"""

from __future__ import annotations

import logging
import threading

from patchgate.secrets.redact import RedactingFilter

TRANSPORT_LOGGERS = (
    "pypsrp", "pypsrp.client", "pypsrp.wsman", "pypsrp.powershell", "pypsrp.shell", "pypsrp.serializer",
    "pypsrp.negotiate", "pypsrp.encryption", "pypsrp._pool_manager", "pypsrp.host", "pypsrp.messages",
    "pypsrp.complex_objects", "pypsrp._utils",
    "psrpcore", "psrpcore._base", "psrpcore._server", "psrpcore._client",
    "requests", "requests_credssp", "requests_credssp.credssp", "spnego", "krb5",
    "urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry",
    "paramiko", "paramiko.transport", "paramiko.sftp",
    "testinfra",
)

_done = False
_lock = threading.Lock()


def quiet_transport_loggers() -> None:
    """Idempotent; called by every remoting kind before it connects."""
    global _done
    with _lock:
        if _done:
            return
        for name in TRANSPORT_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(logging.WARNING)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())
        _done = True
