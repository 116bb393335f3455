"""``patchgate reap --lab LAB``: restore what runs that died left behind, release their stale leases."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from patchgate.errors import EXIT_INCONCLUSIVE
from patchgate.run.reap import reap_lab
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    reap = sub.add_parser("reap", help=summary("reap"),
                          description="Restore VMs that runs no longer alive left changed (killed runs, "
                          "--keep-on-failure) to their snapshot, release their stale leases and undo an approval "
                          "such a run left on a WSUS outside the lab (docs/wsus.md).",
                          epilog="exit codes: 0 nothing left behind or all restored, 2 a VM could not be "
                          "restored (or an approval undone), 4 bad lab file")
    reap.add_argument("--lab", required=True, help="lab file or name")
    reap.add_argument("--dry-run", action="store_true", help="only say what would be restored")
    reap.set_defaults(func=cmd_reap)


def cmd_reap(args: argparse.Namespace) -> int:
    from patchgate.config import load_lab, resolve_lab

    lab = load_lab(resolve_lab(args.lab))
    # the report says what happened; the lease and twin loggers would only repeat it
    logging.getLogger("patchgate").setLevel(logging.ERROR)
    report = reap_lab(lab, dry_run=bool(getattr(args, "dry_run", False)),
                      kind_catalogs=[Path(p) for p in getattr(args, "kind_catalogs", []) or []])
    print(report.render(), end="")
    return EXIT_INCONCLUSIVE if report.failed else 0
