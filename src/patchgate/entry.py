"""The ``patchgate`` console script. Ctrl-C while the command is still loading ends it quietly with exit 130
(docs/exit-codes.md), as it does once the command runs: a terminal's interrupt is never a traceback, and never
lost in the middle of an import (where a finalizer could swallow it). SIGINT and SIGTERM are held back from the
first line here until ``patchgate.cli.main`` can take them."""

from __future__ import annotations

import signal
import sys

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def run() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # delivered when main() unblocks them
    try:
        from patchgate.cli import run as run_command
    except KeyboardInterrupt:  # pragma: no cover - only if something unblocked them during the import
        print("patchgate: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run_command()
