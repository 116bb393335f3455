"""The ``patchgate`` console script. Ctrl-C while the command is still loading ends it quietly with exit 130
(docs/exit-codes.md), as it does once the command runs: a terminal's interrupt is never a traceback."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from patchgate.cli import run as run_command
    except KeyboardInterrupt:
        print("patchgate: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run_command()
