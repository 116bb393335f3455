"""The ``PATCHGATE_*`` environment variables, read and checked in one place (pydantic-settings).

A bad value is bad input (ConfigError, exit 4) naming the variable, never a traceback halfway through a run.
Empty variables count as unset. The variables are listed in docs/environment.md.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from patchgate.errors import ConfigError

PREFIX = "PATCHGATE_"


class Environment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    state_dir: Path | None = None  # ledgers, local leases, twin disks (default ~/.cache/patchgate)
    debug: bool = False  # tracebacks of internal errors
    allure: Path | None = None  # the Allure 3 CLI to use instead of the project's node_modules
    today: dt.date | None = None  # the date waivers are judged against, for reproducible audits


def environment() -> Environment:
    """The variables as they are now (read at each call: a run's children and tests set them)."""
    try:
        return Environment()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = PREFIX + str(error["loc"][0]).upper() if error.get("loc") else "a PATCHGATE_ variable"
        raise ConfigError(f"{name}: {error['msg']}") from None
