"""The PATCHGATE_* variables: parsed in one place, a bad value names its variable, an empty one is unset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from patchgate.environment import environment
from patchgate.errors import ConfigError


def test_values_are_parsed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PATCHGATE_TODAY", "2026-12-01")
    monkeypatch.setenv("PATCHGATE_DEBUG", "yes")
    env = environment()
    assert env.state_dir == tmp_path and env.today == dt.date(2026, 12, 1) and env.debug is True


def test_a_bad_value_is_bad_input_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHGATE_TODAY", "next tuesday")
    with pytest.raises(ConfigError, match="PATCHGATE_TODAY"):
        environment()


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHGATE_ALLURE", "")
    monkeypatch.setenv("PATCHGATE_DEBUG", "")
    env = environment()
    assert env.allure is None and env.debug is False
