"""Remoting: run a script as one pipeline on a VM's long-lived session, copy a file to it.

Kinds: ``psrp`` (WSMan with pypsrp, the default) and ``ssh`` (Windows' OpenSSH server with paramiko, for
labs that disable WinRM). Any other kind is one a lab kind serves itself (its ``remoting_kinds``) and builds.
"""

from __future__ import annotations

from typing import Any

from patchgate.errors import ConfigError
from patchgate.remoting.base import Remoting


def build_remoting(model: Any) -> Remoting:
    """The ``Remoting`` for a lab file's ``remoting:`` block (``patchgate.config.lab.Remoting``)."""
    kind = getattr(model, "kind", None)
    if kind == "psrp":
        from patchgate.remoting.psrp_remoting import PsrpRemoting

        return PsrpRemoting(model.settings)
    if kind == "ssh":
        from patchgate.remoting.ssh import SshRemoting

        return SshRemoting(model.settings)
    raise ConfigError(f"remoting kind '{kind}' is not built here (psrp and ssh are; others are served by the "
                      "lab's kind)", field="remoting.kind")
