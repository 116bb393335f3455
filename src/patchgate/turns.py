"""Turns: the CPU-bound parts of many VMs' work, handed out one at a time, lowest rank first.

A run drives every VM from its own thread, and the threads of one process share one interpreter lock. When
all VMs reach the same step together (every VM of a fleet connects, captures and stages at the same moment),
the lock gives each thread a slice in turn: every VM then finishes the step as late as the slowest, and the
fleet stays in lockstep into the next step, where it collides again. Taking turns in a fixed order (the VM's
place in the run) finishes the first VMs' work first and the last VMs' no later than before; the VMs leave the
step spread out, so their later steps find the CPU free instead of colliding again.

A thread takes the turn only around work that computes (building and reading WSMan messages, parsing a
capture) and gives it back while it waits (the network, the lab). The test loop takes a turn per check with
the last rank: the checks of the first VMs fill the time the last VMs spend in the lab instead of slowing them.
Threads without a rank (a restore at the end of the run) never wait for a turn. Each process has its own turns,
as it has its own lock.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Iterator


class Turns:
    """One turn, handed directly to the waiting thread with the lowest rank (ties: first come)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: list[tuple[int, int, threading.Event]] = []
        self._arrivals = itertools.count()
        self._local = threading.local()

    # ------------------------------------------------------------ the calling thread

    @property
    def rank(self) -> int | None:
        """This thread's rank (None: it never waits for a turn)."""
        return getattr(self._local, "rank", None)

    @rank.setter
    def rank(self, value: int | None) -> None:
        self._local.rank = value

    def holding(self) -> bool:
        return self._held() is not None

    def _held(self) -> int | None:
        """The rank this thread holds the turn with (None: it does not hold it)."""
        return getattr(self._local, "held", None)

    @contextlib.contextmanager
    def taken(self, rank: int | None = None) -> Iterator[None]:
        """Hold the turn for the block (re-entrant); ``rank`` overrides the thread's own."""
        rank = self.rank if rank is None else rank
        if rank is None or self.holding():
            yield
            return
        self._acquire(rank)
        self._local.held = rank
        try:
            yield
        finally:
            self._local.held = None
            self._release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Give the turn back while the block waits (network, lab); take it again afterwards."""
        rank = self._held()
        if rank is None:
            yield
            return
        self._local.held = None
        self._release()
        try:
            yield
        finally:
            self._acquire(rank)
            self._local.held = rank

    # ------------------------------------------------------------ hand-over

    def _acquire(self, rank: int) -> None:
        with self._lock:
            if not self._busy:
                self._busy = True
                return
            handed = threading.Event()
            heapq.heappush(self._waiting, (rank, next(self._arrivals), handed))
        handed.wait()  # the releasing thread hands the turn over: it stays busy

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._busy = False


TURNS = Turns()
"""The process's turns (one per interpreter lock)."""

READING_RANK = (1 << 30) - 1
"""Reading a baseline capture taken already: after every VM's lab traffic (the VM installs meanwhile, and a
baseline is only needed once the post capture is compared with it), before the checks."""

CHECKS_RANK = 1 << 30
"""The checks' rank: after every VM's lifecycle. A check has slack (the run ends with the last VM's restore);
the lifecycle of a VM still in the lab does not."""
