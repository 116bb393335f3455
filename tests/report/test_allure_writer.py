"""The Allure result writer thread: every file on disk at flush, and a failed write is raised, never lost."""

from __future__ import annotations

import pytest

from fixtures.allure_writer import _ResultWriter


def test_flush_returns_when_every_file_is_on_disk_with_no_temporary_left(tmp_path):
    writer = _ResultWriter()
    for index in range(200):
        writer.put(tmp_path, f"{index:03d}-result.json", f'{{"n": {index}}}'.encode())
    writer.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{index:03d}-result.json" for index in range(200)]
    assert (tmp_path / "123-result.json").read_text() == '{"n": 123}'


def test_a_write_that_fails_is_raised_at_flush_and_the_others_still_land(tmp_path):
    writer = _ResultWriter()
    writer.put(tmp_path / "missing-folder", "lost-result.json", b"{}")
    writer.put(tmp_path, "kept-result.json", b"{}")
    with pytest.raises(OSError, match="could not be written"):
        writer.flush()
    assert (tmp_path / "kept-result.json").is_file()
    writer.flush()  # reported once: the next flush has nothing to say
