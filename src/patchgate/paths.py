"""Where patchgate keeps state that must outlive a run (ledgers, local leases, twin disks)."""

from __future__ import annotations

from pathlib import Path


def state_dir() -> Path:
    """$PATCHGATE_STATE_DIR, else ~/.cache/patchgate; created on first use. A folder that cannot be created is
    bad input (ConfigError, exit 4) naming the variable, never a traceback halfway through a run."""
    from patchgate.environment import environment

    configured = environment().state_dir
    base = configured or Path.home() / ".cache" / "patchgate"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from patchgate.errors import ConfigError

        what = "PATCHGATE_STATE_DIR" if configured else "the state folder (set PATCHGATE_STATE_DIR to move it)"
        raise ConfigError(f"{what} {base} cannot be used as a folder: {exc.strerror or exc}") from None
    return base

