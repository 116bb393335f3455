"""Runs of `patchgate validate` for the scale tests, each with its own output and state folder."""

from __future__ import annotations

import pytest
from support.runs import PATCHGATE, ROOT, Run
from support.runs import run_validate as validate

__all__ = ["PATCHGATE", "ROOT", "Run", "validate"]


@pytest.fixture(scope="package")
def run_validate(tmp_path_factory: pytest.TempPathFactory):
    def run(name: str, *args: str, env: dict[str, str] | None = None) -> Run:
        return validate(tmp_path_factory.mktemp(name), tmp_path_factory.mktemp(f"{name}-state"), *args, env=env)

    return run


@pytest.fixture(scope="package")
def single(blocked_run: Run) -> Run:
    """KB5070881 on the twin lab in one process (blocked: hotpatch.track fails on three VMs)."""
    return blocked_run
