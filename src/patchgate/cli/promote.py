"""``patchgate promote RUN --ring RING`` and ``patchgate promote --status KB``: parses, then calls
patchgate.promote.command with typed arguments (docs/rings.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from patchgate.cli.common import LAB_HELP
from patchgate.errors import EXIT_INCONCLUSIVE, ConfigError
from patchgate.cli.table import summary

DESCRIPTION = """Approve an approved run's KB for one ring's computer target groups on production WSUS (with the
ring's deadline), after checking that:
  - `patchgate verify` passes on the run (signatures too, when its lab signs verdicts),
  - the verdict is APPROVE on the whole lab (not narrowed by --vm/--role/--ring, -k, -m or paths),
  - the run is younger than --max-age,
  - each package the run installed is a file WSUS holds of the KB, by SHA-256 (a SHA-256 WSUS cannot give is
    refused unless --allow-unverified-sha256),
  - the ring is not promoted yet, and the ring it comes after was promoted at least its soak time ago (read from
    the production WSUS's approvals).
A refusal is one line, exit 4, and nothing changes. A promotion is recorded in RUN/promotions/<ring>.json, listed
in RUN/promotions/manifest.json (signed when the lab signs), so `patchgate verify RUN` covers it, and in the state
folder's promotions.jsonl. Rings come from --rings FILE or the `rings:` section of the run's lab file."""

EPILOG = """exit codes: 0 promoted (or --dry-run shown, or --status read every server), 2 production WSUS could not be
reached or did not take the approval (nothing recorded), 4 refused or bad input (one line naming the reason)

examples:
  patchgate promote reports/nightly --ring ring1 --rings labs/rings.yaml --dry-run
  patchgate promote reports/nightly --ring ring1 --rings labs/rings.yaml
  patchgate promote --status KB5070893 --rings labs/rings.yaml"""


def add_command(sub: Any) -> None:
    promote = sub.add_parser("promote", help=summary("promote"),
                             description=DESCRIPTION, epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    promote.add_argument("dir", nargs="?", metavar="RUN_DIR", help="the output folder of an approving run")
    promote.add_argument("--ring", help="the ring to promote to (a name in the rings file)")
    promote.add_argument("--rings", metavar="FILE", help="rings file (default: the `rings:` section of the lab file "
                         "the run recorded); docs/rings.md")
    promote.add_argument("--lab", help="with --status: take the rings from this lab file; " + LAB_HELP)
    promote.add_argument("--dry-run", action="store_true", help="check everything and show what would be approved "
                         "and recorded; change nothing")
    promote.add_argument("--max-age", default="7d", metavar="AGE",
                         help="refuse a run that finished longer ago than this (default 7d; e.g. 36h, 2d)")
    promote.add_argument("--allow-unverified-sha256", action="store_true",
                         help="promote even when WSUS gives no SHA-256 for the KB's files (the record says so); a "
                         "SHA-256 that differs is refused regardless")
    promote.add_argument("--public-key", help="check the run's signatures offline with this exported key")
    promote.add_argument("--status", metavar="KB", help="list where KB stands in each ring (read from production "
                         "WSUS; the local ledger names the runs) instead of promoting")
    promote.set_defaults(func=cmd_promote)


def cmd_promote(args: argparse.Namespace) -> int:
    from patchgate.config.rings import parse_duration

    if args.status:
        return _status(args)
    if not args.dir or not args.ring:
        raise ConfigError("promote needs RUN_DIR and --ring RING (or --status KB)", field="--ring")
    if args.lab:
        raise ConfigError("--lab goes with --status; a promotion uses the lab file its run recorded (and --rings)",
                          field="--lab")
    try:
        max_age = parse_duration(args.max_age, what="--max-age")
    except ValueError as exc:
        raise ConfigError(str(exc), field="--max-age") from None
    from patchgate.promote.command import PromoteRequest, promote

    outcome = promote(PromoteRequest(run_dir=Path(args.dir), ring=args.ring,
                                     rings_file=Path(args.rings) if args.rings else None, dry_run=args.dry_run,
                                     max_age=max_age, allow_unverified_sha256=args.allow_unverified_sha256,
                                     public_key=args.public_key))
    for line in outcome.lines:
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    from patchgate.config import load_lab, resolve_lab
    from patchgate.config.rings import load_rings
    from patchgate.promote.command import status

    if args.rings:
        lab = load_lab(resolve_lab(args.lab)) if args.lab else None
        rings = load_rings(Path(args.rings), lab)
    elif args.lab:
        lab = load_lab(resolve_lab(args.lab))
        if lab.rings is None or lab.source is None:
            raise ConfigError("the lab file has no `rings:` section", file=str(lab.source), field="rings")
        rings = load_rings(lab.source, lab)
    else:
        raise ConfigError("--status needs --rings FILE or --lab LAB", field="--status")
    lines, complete = status(args.status, rings)
    for line in lines:
        print(line)
    return 0 if complete else EXIT_INCONCLUSIVE


__all__ = ["add_command", "cmd_promote"]
