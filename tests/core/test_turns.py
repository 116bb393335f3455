"""patchgate.turns: CPU-bound work handed out one thread at a time, lowest rank first."""

from __future__ import annotations

import threading
import time

import pytest

from patchgate.turns import Turns


def _until(condition, what: str, timeout: float = 10.0) -> None:
    """Poll a condition (threads reach their wait on their own schedule); fail naming it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def _waiter(turns: Turns, rank: int, order: list[int]) -> threading.Thread:
    def work() -> None:
        turns.rank = rank
        with turns.taken():
            order.append(rank)

    thread = threading.Thread(target=work, name=f"rank-{rank}")
    thread.start()
    return thread


def _holder(turns: Turns, rank: int) -> tuple[threading.Thread, threading.Event]:
    """A thread that holds the turn until the returned event is set (it holds it when this returns)."""
    release = threading.Event()

    def hold() -> None:
        with turns.taken(rank=rank):
            release.wait(10)

    thread = threading.Thread(target=hold, name=f"holder-{rank}")
    thread.start()
    _until(lambda: turns._busy, f"rank {rank} to take the turn")
    return thread, release


def _queue_in_order(turns: Turns, ranks: tuple[int, ...], order: list[int]) -> list[threading.Thread]:
    """Waiters arriving one after the other, each queued before the next comes."""
    threads = []
    for rank in ranks:
        threads.append(_waiter(turns, rank, order))
        _until_queued(turns, len(threads), f"rank {rank}")
    return threads


def _until_queued(turns: Turns, count: int, what: str) -> None:
    _until(lambda: len(turns._waiting) == count, f"{what} to queue")


def test_waiting_threads_get_the_turn_lowest_rank_first_not_first_come():
    turns, order = Turns(), []
    first, holder_may_go = _holder(turns, 0)
    threads = _queue_in_order(turns, (7, 2, 9, 4), order)  # arrive in this order
    holder_may_go.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert order == [2, 4, 7, 9]
    assert not turns._busy and not turns._waiting


def test_a_thread_waiting_on_the_network_lets_another_compute_then_takes_the_turn_back():
    turns, events = Turns(), []
    in_wait, other_done = threading.Event(), threading.Event()

    def waits_on_network() -> None:
        turns.rank = 0
        with turns.taken():
            events.append("0 computes")
            with turns.released():
                in_wait.set()
                other_done.wait(10)  # stands for a WSMan round trip
            events.append("0 computes again")
            assert turns.holding()

    def computes() -> None:
        in_wait.wait(10)
        with turns.taken(rank=1):
            events.append("1 computes")
        other_done.set()

    threads = [threading.Thread(target=waits_on_network), threading.Thread(target=computes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert events == ["0 computes", "1 computes", "0 computes again"]


def test_a_thread_without_a_rank_never_waits_for_the_turn():
    turns = Turns()
    thread, release = _holder(turns, 0)
    passed = []
    with turns.taken():  # this (test) thread has no rank
        passed.append(True)
    with turns.released():  # and nothing to give back
        passed.append(True)
    release.set()
    thread.join(10)
    assert passed == [True, True]


def test_the_turn_is_reentrant_and_one_thread_holds_it_at_a_time():
    turns = Turns()
    holders, most = [0], [0]
    lock = threading.Lock()

    def work(rank: int) -> None:
        turns.rank = rank
        for _ in range(200):
            with turns.taken():
                with turns.taken():  # nested: already held
                    with lock:
                        holders[0] += 1
                        most[0] = max(most[0], holders[0])
                    with lock:
                        holders[0] -= 1
                with turns.released():
                    pass

    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert most[0] == 1
    assert not turns._busy and not turns._waiting


def test_a_thread_with_the_last_rank_waits_for_every_vm_but_not_for_ever():
    from patchgate.turns import CHECKS_RANK

    turns, order = Turns(), []
    first, release = _holder(turns, 5)
    threads = _queue_in_order(turns, (CHECKS_RANK, 31), order)  # a VM arriving later still goes first
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert order == [31, CHECKS_RANK]
