"""Lab operations are retried a bounded number of times; timeouts, bad credentials and a stopping run are not."""

from __future__ import annotations

import threading

import pytest

from patchgate.config.lab import Retries
from patchgate.errors import LabError, LabTimeout, RemotingAuthError
from patchgate.run.retry import with_retries


def failing(times: int, error: Exception):
    calls: list[int] = []

    def func() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return func, calls


def test_a_lab_error_is_retried_up_to_the_count_and_each_retry_is_reported() -> None:
    func, calls = failing(2, LabError("revert failed", vm="vm1"))
    seen: list[int] = []
    assert with_retries("revert", func, Retries(count=2, backoff=0), vm="vm1",
                        on_retry=lambda attempt, exc: seen.append(attempt)) == "done"
    assert len(calls) == 3 and seen == [1, 2]


def test_the_last_error_is_raised_when_the_retries_run_out() -> None:
    func, calls = failing(5, LabError("revert failed", vm="vm1"))
    with pytest.raises(LabError, match="revert failed"):
        with_retries("revert", func, Retries(count=2, backoff=0))
    assert len(calls) == 3


@pytest.mark.parametrize("error", [LabTimeout("no answer"), RemotingAuthError("rejected")])
def test_timeouts_and_rejected_credentials_are_not_retried(error: LabError) -> None:
    func, calls = failing(5, error)
    with pytest.raises(type(error)):
        with_retries("connect", func, Retries(count=3, backoff=0))
    assert len(calls) == 1


def test_a_stopping_run_cuts_the_backoff_short_with_the_error() -> None:
    stop = threading.Event()
    stop.set()
    func, calls = failing(5, LabError("power on failed"))
    with pytest.raises(LabError, match="power on failed"):
        with_retries("power on", func, Retries(count=3, backoff=300), stop=stop)
    assert len(calls) == 1
