"""The pytest command ``patchgate validate`` runs the suites with, read back by pytest's own option parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.config import get_config

from patchgate.cli import build_parser
from patchgate.cli.validate import _suite_command

ROOT = Path(__file__).resolve().parents[2]


def _pytest_options(*extra: str):
    args = build_parser().parse_args(["validate", "--lab", "twin", "--candidate", "KB5070881", "--", *extra])
    args.pytest_args = args.pytest_args[1:]  # without the '--', as main() passes them on
    command = _suite_command(args, ROOT, ROOT / "labs" / "twin.yaml", ROOT / "candidates" / "KB5070881.yaml",
                             Path("out"), "run-1")
    assert command[1:3] == ["-m", "pytest"]
    return get_config(command[3:])._parser.parse_known_args(command[3:])  # options pytest itself knows


def test_the_checks_output_is_captured_at_the_python_level_by_default():
    assert _pytest_options().capture == "sys"


@pytest.mark.parametrize(("extra", "method"), [(("--capture=fd",), "fd"), (("-s",), "no")])
def test_a_capture_option_after_the_double_dash_wins(extra, method):
    assert _pytest_options(*extra).capture == method


def test_the_traceback_style_is_short_unless_asked_otherwise():
    assert _pytest_options().tbstyle == "short"
    assert _pytest_options("--tb=long").tbstyle == "long"
