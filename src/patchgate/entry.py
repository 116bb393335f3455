"""The ``patchgate`` console script. Ctrl-C while the command is still loading ends it quietly with exit 130
(docs/exit-codes.md), as it does once the command runs: a terminal's interrupt is never a traceback, and never
lost in the middle of an import (where a finalizer could swallow it). SIGINT and SIGTERM are held back from the
first line here until ``patchgate.cli.main`` can take them."""

from __future__ import annotations

import _signal

# Held back before anything else: the C module blocks them with no Python code run first, where `import signal`
# spends milliseconds building its enums (a Ctrl-C there was a KeyboardInterrupt traceback out of signal.py).
_signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})

import signal  # noqa: E402 - after the mask, on purpose
import sys  # noqa: E402

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def run() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # delivered when main() unblocks them
    try:
        from patchgate.cli import run as run_command
    except KeyboardInterrupt:  # pragma: no cover - only if something unblocked them during the import
        print("patchgate: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run_command()
