"""``patchgate leases --lab LAB``: who holds which VM of a lab right now."""

from __future__ import annotations

import argparse

from patchgate.config import load_lab, resolve_lab
from patchgate.leases import leases_command


def cmd_leases(args: argparse.Namespace) -> int:
    lab = load_lab(resolve_lab(args.lab))
    print(leases_command(lab), end="")
    return 0
