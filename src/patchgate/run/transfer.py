"""While a VM pulls the candidate: how many bytes moved so far, reported to the progress view.

The content server counts what it sent each VM (patchgate.remoting.content); a watcher samples that count on a
thread of its own while the VM's staging runs and reports it when it changed. No transfer is slowed or waited
for: a report is a callback, and the last one is sent when the watch ends.
"""

from __future__ import annotations

import threading
from typing import Callable

TransferCallback = Callable[[str, int, int], None]  # (vm, bytes moved so far, bytes to move)
EVERY = 0.5  # seconds between samples


class TransferWatch:
    """``with TransferWatch(vm, sent, total, report):`` reports ``sent() - sent()@start`` while the block runs."""

    def __init__(self, vm: str, sent: Callable[[], int], total: int, report: TransferCallback,
                 every: float = EVERY) -> None:
        self.vm, self._sent, self.total, self._report, self.every = vm, sent, total, report, every
        self._base = 0
        self._last = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "TransferWatch":
        self._base = self._sent()
        self._thread = threading.Thread(target=self._run, name=f"patchgate-transfer-{self.vm}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        moved = self._sent() - self._base
        if moved != self._last and moved > 0:
            self._last = moved
            self._report(self.vm, moved, self.total)
