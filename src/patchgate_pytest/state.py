"""The run-wide state the fixtures share, kept on pytest's config stash."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from patchgate.config import Candidate, Lab, VmSpec
from patchgate.run.labrun import LabRun, RunSelection


@dataclass
class RunState:
    lab: Lab
    candidate: Candidate
    lab_path: Path
    candidate_path: Path
    out_dir: Path
    run_id: str
    selection: RunSelection
    selected_vms: list[VmSpec]
    kind_catalogs: list[Path]
    keep_on_failure: bool
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    lab_run: LabRun | None = None
    today: dt.date = field(default_factory=dt.date.today)


STATE_KEY = pytest.StashKey[RunState]()


def run_state(config: pytest.Config) -> RunState | None:
    return config.stash.get(STATE_KEY, None)


# The pytest configs alive in this process, for hooks that pytest calls without one (logreport, keyboard
# interrupt) and for the invariant wrapper. Registered by patchgate_pytest.options.
_ACTIVE: list[pytest.Config] = []


def remember(config: pytest.Config) -> None:
    if config not in _ACTIVE:
        _ACTIVE.append(config)


def forget(config: pytest.Config) -> None:
    if config in _ACTIVE:
        _ACTIVE.remove(config)


def active_configs() -> list[pytest.Config]:
    return list(_ACTIVE)


def current_config() -> pytest.Config | None:
    return _ACTIVE[-1] if _ACTIVE else None
