"""The settle window survives a failed look: a WSMan error on one look is followed by the next look, so the post
capture is not taken before the guest's delayed-start services run again (that would block a good update)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from patchgate.errors import LabError
from patchgate.run.settle import wait_settled


@dataclass
class _Service:
    state: str
    automatic: bool = True
    delayed_auto_start: bool = True
    trigger_start: bool = False

    @property
    def running(self) -> bool:
        return self.state == "Running"


def _looks(*answers):
    """A look that gives each answer in turn (an exception is raised), then the last one for ever."""
    queue = list(answers)

    def look():
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return look


def test_a_failed_look_is_followed_by_the_next_within_the_window() -> None:
    look = _looks(LabError("KeyError talking to vm"), {"UsoSvc": _Service("Stopped")}, {"UsoSvc": _Service("Running")})
    result = wait_settled(look, frozenset({"UsoSvc"}), 5.0, threading.Event())
    assert result.settled and result.polls == 3


def test_a_window_that_ends_on_failed_looks_raises_the_last_failure() -> None:
    look = _looks(LabError("the guest does not answer"))
    with pytest.raises(LabError, match="does not answer"):
        wait_settled(look, frozenset({"UsoSvc"}), 0.5, threading.Event())


def test_looks_that_keep_failing_end_the_wait_long_before_the_window() -> None:
    """A guest whose every look fails is not settling: after `failed_looks` in a row the step says so (the
    'wsman-reset' fault's run would otherwise poll out its whole window before the capture names the trouble)."""
    calls: list[int] = []

    def look():
        calls.append(1)
        raise LabError("connection reset during capture")

    with pytest.raises(LabError, match="connection reset"):
        wait_settled(look, frozenset({"UsoSvc"}), 60.0, threading.Event(), failed_looks=3)
    assert len(calls) == 3


def test_a_good_look_between_failures_starts_the_count_again() -> None:
    down = LabError("hiccup")
    up = {"UsoSvc": _Service("Stopped")}
    look = _looks(down, down, up, down, down, up, {"UsoSvc": _Service("Running")})
    result = wait_settled(look, frozenset({"UsoSvc"}), 30.0, threading.Event(), failed_looks=3)
    assert result.settled and result.polls == 7


def test_no_look_is_taken_before_the_shortest_settle() -> None:
    """A look before ``at_least`` cannot end the wait: the first one is taken after it, and a settled guest is
    looked at once."""
    began = time.monotonic()
    taken: list[float] = []

    def look():
        taken.append(time.monotonic() - began)
        return {"UsoSvc": _Service("Running")}

    result = wait_settled(look, frozenset({"UsoSvc"}), 30.0, threading.Event(), at_least=0.3)
    assert result.settled and result.polls == 1
    assert taken[0] >= 0.3


def test_a_stop_during_the_shortest_settle_ends_the_wait_without_a_look() -> None:
    stop = threading.Event()
    stop.set()
    looked: list[int] = []
    result = wait_settled(lambda: looked.append(1) or {}, frozenset(), 30.0, stop, at_least=10.0)
    assert not result.settled and result.polls == 0 and not looked
    assert "the shortest settle" in result.detail
