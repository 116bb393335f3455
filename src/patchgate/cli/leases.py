"""``patchgate leases --lab LAB``: who holds which VM of a lab right now."""

from __future__ import annotations

import argparse
from typing import Any

from patchgate.config import load_lab, resolve_lab
from patchgate.leases import leases_command
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    leases = sub.add_parser("leases", help=summary("leases"),
                            description="List who holds which VM of the lab (run, process, host, since), and "
                            "stale leases whose holder died.", epilog="exit codes: 0 listed, 2 lease backend "
                            "unreachable, 4 bad lab file")
    leases.add_argument("--lab", required=True, help="lab file or name")
    leases.set_defaults(func=cmd_leases)


def cmd_leases(args: argparse.Namespace) -> int:
    lab = load_lab(resolve_lab(args.lab))
    print(leases_command(lab), end="")
    return 0
