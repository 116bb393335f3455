"""What pytest's runner does to os.environ at every test phase (PYTEST_CURRENT_TEST set, then deleted), done by
another thread as fast as the interpreter lets it, for tests of clients that must not read the environment on
every request (patchgate.environ_race)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

VARIABLE = "PATCHGATE_TEST_ENVIRON_CHURN"


@contextlib.contextmanager
def environ_churn() -> Iterator[None]:
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            os.environ[VARIABLE] = "tests/x.py::test (call)"
            os.environ.pop(VARIABLE, None)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often, so a walk of the environment meets a deletion
    writer = threading.Thread(target=churn, name="environ-churn", daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(switch)
