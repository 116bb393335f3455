"""Bounded retries for lab operations only (never for invariants), each retry logged with its reason."""

from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

from patchgate.config.lab import Retries
from patchgate.errors import LabError, LabTimeout, RemotingAuthError

T = TypeVar("T")
log = logging.getLogger("patchgate.retry")

NOT_RETRIED: tuple[type[LabError], ...] = (LabTimeout, RemotingAuthError)


def with_retries(operation: str, func: Callable[[], T], policy: Retries, *, vm: str | None = None,
                 stop: threading.Event | None = None, on_retry: Callable[[int, LabError], None] | None = None) -> T:
    """Run ``func``; on a LabError try again up to ``policy.count`` times with exponential backoff.

    Timeouts and rejected credentials are not retried: waiting again would only double the time to a verdict.
    """
    attempt = 0
    while True:
        try:
            return func()
        except NOT_RETRIED:
            raise
        except LabError as exc:
            if attempt >= policy.count:
                raise
            attempt += 1
            delay = policy.backoff * (2 ** (attempt - 1))
            log.warning("retry %d/%d of %s%s in %.1fs: %s", attempt, policy.count, operation,
                        f" on {vm}" if vm else "", delay, exc.detail)
            if on_retry:
                on_retry(attempt, exc)
            if stop is not None and stop.wait(delay):
                raise
            elif stop is None and delay:
                threading.Event().wait(delay)
