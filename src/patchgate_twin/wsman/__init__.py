"""The twin's WinRM face: a WSMan/PSRP endpoint per VM on 127.0.0.1, answered by the twin's ScriptHost."""

from patchgate_twin.wsman.manager import TwinEndpoints
from patchgate_twin.wsman.server import WSManEndpoint

__all__ = ["TwinEndpoints", "WSManEndpoint"]
