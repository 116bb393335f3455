"""What every subcommand module shares: the parser class, one-line failures, the lab arguments, --help texts."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

from patchgate.errors import EXIT_CONFIG
from patchgate.labkinds import CATALOG_OPTION

CLASSIFICATIONS = ("hotpatch", "baseline", "lcu", "oob", "wsus-security", "ssu", "dotnet", "other")
"""Candidate classifications (patchgate.config.candidate.Classification), for --help without pydantic."""
ROLES = ("hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host")
"""VM roles a lab may use (patchgate.config.lab.Role; kept here so --help needs no pydantic)."""

EPILOG = """exit codes: 0 approve, 1 block, 2 inconclusive, 3 internal error, 4 usage or configuration error

examples:
  patchgate validate --lab twin --candidate KB5070881
  patchgate validate --lab labs/vsphere-sim.example.yaml --candidate candidates/KB5070893.yaml --role wsus-server -- -k sync
  patchgate gate reports/<run>            # print the verdict of a finished run, exit with its code
  patchgate report reports/<run>          # single-file Allure report + one-page summary
  patchgate verify reports/<run>          # re-hash every output against the evidence manifest
  patchgate doctor --lab twin             # check a lab before trusting its verdicts (docs/first-day.md)
"""


class Parser(argparse.ArgumentParser):
    """argparse that exits 4 (usage error) with one line, as every patchgate usage error does."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def fail(message: str, code: int) -> int:
    print(f"patchgate: {one_line(message)}", file=sys.stderr)
    return code


def one_line(text: str) -> str:
    """Errors are one line: control characters a bad file smuggled into a value are shown escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand function loaded when it runs (for subcommands other distributions add)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args))

    return run


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """--lab and the catalogue option, for the commands that read a lab's VMs without a candidate run."""
    parser.add_argument("--lab", required=True, help=LAB_HELP)
    add_catalog_argument(parser)


LAB_HELP = "lab file, or the name of a lab file under labs/ (without .yaml)"


def add_catalog_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(CATALOG_OPTION, action="append", default=[], metavar="DIR", dest="kind_catalogs",
                        help="add images and behaviours from DIR for a lab kind that reads catalogues (repeatable)")
