"""Helpers for the report tests: run `patchgate validate` / `verify` / `report` as a user does.

Each run uses its own PATCHGATE_STATE_DIR so the local VM leases of other runs on this machine cannot make it
broken, and CI variables are removed so executor.json only appears where a test asks for it.
"""

from __future__ import annotations

import pytest
from support.runs import PATCHGATE, ROOT, Run, clean_env, patchgate, run_validate

__all__ = ["PATCHGATE", "ROOT", "Run", "clean_env", "patchgate", "validate"]


def validate(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str, **env: str) -> Run:
    return run_validate(tmp_path_factory.mktemp(name), tmp_path_factory.mktemp(f"{name}-state"), *args, env=env)
