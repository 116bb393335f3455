"""Bounded retries for lab operations only (never for invariants), each retry logged with its reason.

tenacity does the counting and the exponential backoff; the run's stop event cuts a backoff short (the last
error is raised then, as it would be after the last attempt).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from patchgate.config.lab import Retries
from patchgate.errors import LabError, LabTimeout, RemotingAuthError

T = TypeVar("T")
log = logging.getLogger("patchgate.run.retry")

NOT_RETRIED: tuple[type[LabError], ...] = (LabTimeout, RemotingAuthError)


def _retried(exc: BaseException) -> bool:
    """Timeouts and rejected credentials are not retried: waiting again would only double the time to a verdict."""
    return isinstance(exc, LabError) and not isinstance(exc, NOT_RETRIED)


def with_retries(operation: str, func: Callable[[], T], policy: Retries, *, vm: str | None = None,
                 stop: threading.Event | None = None, on_retry: Callable[[int, LabError], None] | None = None) -> T:
    """Run ``func``; on a LabError try again up to ``policy.count`` times with exponential backoff
    (``policy.backoff`` seconds, then twice that, and so on)."""
    last: list[LabError] = []

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert isinstance(exc, LabError)
        last[:] = [exc]
        delay = state.upcoming_sleep
        log.warning("retry %d/%d of %s%s in %.1fs: %s", state.attempt_number, policy.count, operation,
                    f" on {vm}" if vm else "", delay, exc.detail)
        if on_retry:
            on_retry(state.attempt_number, exc)

    def sleep(seconds: float) -> None:
        if stop is not None:
            if stop.wait(seconds):
                raise last[0]  # the run is stopping: the error that asked for the retry is the answer
        elif seconds:
            threading.Event().wait(seconds)

    retrying = Retrying(stop=stop_after_attempt(policy.count + 1), retry=retry_if_exception(_retried),
                        wait=wait_exponential(multiplier=policy.backoff, min=0, max=float("inf")),
                        before_sleep=before_sleep, sleep=sleep, reraise=True)
    return retrying(func)
