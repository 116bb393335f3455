"""Installing a KB on a twin host as DISM would: the checks it makes first, the effects now or at the restart.

Conditions are evaluated against the host as it was *before* the install, so the order of effects never changes
which of them apply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from patchgate_twin.behaviours.behaviour import Behaviour
from patchgate_twin.behaviours.effects import EffectBase
from patchgate_twin.behaviours.results import (
    CBS_E_NOT_APPLICABLE,
    EXIT_REBOOT_REQUIRED,
    EXIT_SUCCESS,
    WU_S_ALREADY_INSTALLED,
    InstallOutcome,
    hresult,
)
from patchgate_twin.model import WindowsHost


@dataclass
class PendingEffect:
    """An ``after: reboot`` effect of an installed KB, queued on the host until its next restart."""

    kb: str
    effect: EffectBase


def apply_logged(host: WindowsHost, effect: EffectBase, now: dt.datetime, log: list[str], kb: str) -> bool:
    """Apply one effect; one that names something this host lacks (``set: services.himds.state`` on a host
    without himds) is skipped with a log line instead of failing the install: guard it with ``when``."""
    try:
        effect.apply(host, now)
        return True
    except (KeyError, IndexError) as exc:
        log.append(f"{kb}: twin effect '{effect.action}' skipped: {exc} is not present on this host")
        return False


def _already_installed(host: WindowsHost, kb: str, log: list[str]) -> InstallOutcome | None:
    queued = any(p.kb == kb for p in host.pending_after_reboot)
    if not host.has_kb(kb) and not queued:
        return None
    pending = bool(host.reboot.cbs_reboot_pending and queued)
    log.append(f"Package {kb} is already installed ({hresult(WU_S_ALREADY_INSTALLED)} "
               f"WU_S_ALREADY_INSTALLED){'; a restart is still pending' if pending else ''}")
    return InstallOutcome(kb, EXIT_REBOOT_REQUIRED if pending else EXIT_SUCCESS, pending, log,
                          already_installed=True)


def apply_install(host: WindowsHost, behaviour: Behaviour, now: dt.datetime) -> InstallOutcome:
    """Install ``behaviour.kb`` on ``host`` (mutated in place) as DISM would, at model time ``now``."""
    kb = behaviour.kb
    log = [f"{now.isoformat()} Installing {kb}: {behaviour.title}"]
    if behaviour.install_hangs:
        log.append(f"{kb}: the install does not finish (behaviour sets install_hangs)")
        return InstallOutcome(kb, EXIT_SUCCESS, False, log, hangs=True)
    if behaviour.install_fails is not None:
        failure = behaviour.install_fails
        log.append(f"Error: {hresult(failure.exit_code)} {failure.message}")
        return InstallOutcome(kb, failure.exit_code, False, log, failed=True)
    if (already := _already_installed(host, kb, log)) is not None:
        return already
    before = host.clone()
    if behaviour.applies_to is not None and not behaviour.applies_to.holds(before):
        reason = behaviour.not_applicable_reason or "its applicability rules do not match this host"
        log.append(f"{kb} is not applicable to this host (build {host.build}): {reason}")
        log.append(f"Error: {hresult(CBS_E_NOT_APPLICABLE)} The specified package is not applicable to this image.")
        return InstallOutcome(kb, CBS_E_NOT_APPLICABLE, False, log, failed=True, not_applicable=True)
    restart = behaviour.restart_needed(before)
    applied = pending = 0
    for effect in behaviour.effects:
        if effect.when is not None and not effect.when.holds(before):
            continue
        if effect.after == "reboot":
            host.pending_after_reboot.append(PendingEffect(kb, effect))
            pending += 1
        elif apply_logged(host, effect, now, log, kb):
            applied += 1
    if restart:
        host.reboot.cbs_reboot_pending = True
        host.reboot.wua_reboot_required = True
        log.append(f"{kb} installed; a restart is required to complete the operation "
                   f"(exit code {EXIT_REBOOT_REQUIRED})")
    else:
        log.append(f"{kb} installed; no restart required")
    return InstallOutcome(kb, EXIT_REBOOT_REQUIRED if restart else EXIT_SUCCESS, restart, log,
                          never_ready_after_reboot=behaviour.never_ready_after_reboot,
                          effects_applied=applied, effects_pending=pending)
