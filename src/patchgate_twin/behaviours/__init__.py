"""Update behaviours and what applying them does to a twin host.

A behaviour says what installing one KB does to a Windows Server 2025 host: whether it applies at all (DISM's
"not applicable", 0x800f081e), whether it needs a restart, and which parts of the host it changes, each change
(an effect: one model per action, with its own ``apply``) optionally guarded by a condition on the host and
optionally shown only after the restart. It can also inject lab trouble (an install that fails or hangs, a guest
that never comes back). The YAML format is in docs/twin.md.

Entry points (stable; the twin lab and shell call them):

* ``apply_install(host, behaviour, now) -> InstallOutcome``
* ``complete_reboot(host, now)``: what a restart does (post-reboot effects, auto-start services, flags cleared)
* ``run_wsus_sync(host, now) -> SyncInfo``: one WSUS synchronization, as the host's state allows

Side effects Windows itself would produce follow from the model (``windows``): a service that stops loses its
process and logs SCM 7036, a changed start type logs 7040, a new service logs 7045.
"""

from patchgate_twin.behaviours.behaviour import Behaviour, InstallFailure, RestartWhen
from patchgate_twin.behaviours.conditions import Condition
from patchgate_twin.behaviours.effects import ACTIONS, Effect, EffectBase, parse_effect
from patchgate_twin.behaviours.expect import INVARIANT_IDS, Expect
from patchgate_twin.behaviours.install import apply_install
from patchgate_twin.behaviours.paths import path_type, set_path
from patchgate_twin.behaviours.reboot import complete_reboot
from patchgate_twin.behaviours.results import (
    CBS_E_INSTALLERS_FAILED,
    CBS_E_NOT_APPLICABLE,
    EXIT_REBOOT_REQUIRED,
    EXIT_SUCCESS,
    TWIN_E_UNKNOWN_KB,
    WU_S_ALREADY_INSTALLED,
    InstallOutcome,
    hresult,
)
from patchgate_twin.behaviours.wsus_sync import WsusRoleMissing, run_wsus_sync

__all__ = [
    "ACTIONS",
    "CBS_E_INSTALLERS_FAILED",
    "CBS_E_NOT_APPLICABLE",
    "EXIT_REBOOT_REQUIRED",
    "EXIT_SUCCESS",
    "INVARIANT_IDS",
    "TWIN_E_UNKNOWN_KB",
    "WU_S_ALREADY_INSTALLED",
    "Behaviour",
    "Condition",
    "Effect",
    "EffectBase",
    "Expect",
    "InstallFailure",
    "InstallOutcome",
    "RestartWhen",
    "WsusRoleMissing",
    "apply_install",
    "complete_reboot",
    "hresult",
    "parse_effect",
    "path_type",
    "run_wsus_sync",
    "set_path",
]
