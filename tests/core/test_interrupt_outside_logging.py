"""A stop signal never raises KeyboardInterrupt inside the logging module: raised between logging's lock
acquire and its ``try``, it left the module lock held, and the run's lease thread waited on its next log line for
ever (a Ctrl-C two seconds into a run hung it); raised in the lock hooks logging runs around ``os.fork``, it was
dropped as unraisable. The handler holds such a signal back and sends it again until it lands outside logging.

Each case runs in a fresh interpreter: the stop flag a signal sets is process-wide."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import logging, os, signal, sys, threading, time
from patchgate.run.interrupts import StopOnce

handler = StopOnce()
signal.signal(signal.SIGINT, handler)
outcome = []

class SignalInsideEmit(logging.Handler):
    def emit(self, record):  # logging holds this handler's lock here
        signal.raise_signal(signal.SIGINT)
        for _ in range(1000):  # the handler runs at one of these bytecodes, inside logging
            pass
        outcome.append("emit finished")

log = logging.getLogger("case")
log.addHandler(SignalInsideEmit())
log.propagate = False
try:
    log.warning("a line")
    time.sleep(5)  # the held-back signal is sent again and arrives here
    outcome.append("no interrupt")
except KeyboardInterrupt:
    outcome.append("interrupted outside logging")
# another thread can still log: no lock was left held
other = threading.Thread(target=lambda: logging.getLogger("other").warning("still logging"))
other.start(); other.join(5)
outcome.append("other thread logged" if not other.is_alive() else "other thread stuck")
print(outcome)
"""


def test_a_signal_inside_a_logging_call_interrupts_right_after_it_and_leaves_no_lock_held() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(["emit finished", "interrupted outside logging", "other thread logged"])
