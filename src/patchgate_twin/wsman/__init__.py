"""The twin's WinRM face: a WSMan/PSRP endpoint per VM on 127.0.0.1, answered by the twin's ScriptHost."""

from patchgate_twin.wsman.endpoint import WSManEndpoint
from patchgate_twin.wsman.manager import TwinEndpoints

__all__ = ["TwinEndpoints", "WSManEndpoint"]
