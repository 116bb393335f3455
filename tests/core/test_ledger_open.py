"""The run ledger is held before its first write: Ctrl-C landing in that write (an fsync on a busy disk) still
leaves the run an object to write the ledger's end with, and a ledger whose start never reached the disk reads as
ended once its end is written."""

from __future__ import annotations

from pathlib import Path

from patchgate.run.ledger import Ledger, read_ledger


def test_a_ledger_writes_nothing_until_it_is_opened(tmp_path: Path) -> None:
    ledger = Ledger("run-1", "lab", None, folder=tmp_path)
    assert not ledger.path.exists()
    ledger.open()
    state = read_ledger(ledger.path)
    assert state.lab == "lab" and not state.ended
    ledger.close("finished")
    assert read_ledger(ledger.path).ended


def test_a_ledger_interrupted_before_its_start_entry_still_ends(tmp_path: Path) -> None:
    ledger = Ledger("run-2", "lab", None, folder=tmp_path)
    ledger.close("interrupted")  # the start entry never reached the disk
    state = read_ledger(ledger.path)
    assert state.ended and not state.dirty_vms
