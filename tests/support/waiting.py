"""One poll loop for the tests: a real condition, checked until it holds or a deadline passes."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, *, timeout: float, interval: float = 0.05) -> T:
    """Return ``condition()``'s first truthy value; fail naming ``what`` once ``timeout`` seconds have passed.
    The sleep is the poll interval of a condition with a deadline, never a stand-in for readiness."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} (waited {timeout:g}s)")
        time.sleep(interval)
