"""The table of subcommands (patchgate.cli.table): ``--help`` lists every command from it alone, each entry's
module adds that command, and a chosen command loads only its own module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from patchgate.cli import build_parser
from patchgate.cli.table import COMMANDS


def _commands(parser) -> dict:
    return parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them nowhere else


def test_help_from_the_table_is_the_help_of_every_command_loaded() -> None:
    assert build_parser(["--help"]).format_help() == build_parser().format_help()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_of_the_table_is_added_by_its_own_module(name: str) -> None:
    commands = _commands(build_parser([name]))
    assert name in commands
    assert commands[name].description, f"{name}: only listed, its module did not add it"


def test_a_name_not_in_the_table_is_still_an_invalid_choice_naming_them_all(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(["verfiy"]).parse_args(["verfiy"])
    assert exited.value.code == 4
    err = capsys.readouterr().err
    assert "invalid choice: 'verfiy'" in err
    assert all(f"'{name}'" in err for name in (*COMMANDS, "twin"))


@pytest.mark.slow
def test_a_chosen_command_loads_only_its_own_module() -> None:
    """In a fresh interpreter: this test process has every module loaded already."""
    script = ("import json, sys; from patchgate.cli import build_parser; "
              "build_parser(['verify', 'reports/x']).parse_args(['verify', 'reports/x']); "
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('patchgate.cli.'))))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                           text=True).stdout))
    command_modules = {f"patchgate.cli.{command.module}" for command in COMMANDS.values()}
    assert loaded & command_modules == {"patchgate.cli.verify"}
