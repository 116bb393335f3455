"""The Allure result writer thread: every file on disk at flush, and a failed write is raised, never lost."""

from __future__ import annotations

import pytest

from patchgate_pytest.allure_writer import _ResultWriter


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


def test_files_are_masked_as_written_and_trusted_only_while_no_later_secret_could_be_in_them(tmp_path):
    from patchgate.evidence.manifests import _still_as_written
    from patchgate.secrets.redact import MASK, redactor

    early, late = "writer-early-secret-7f3a9c", "writer-late-secret-2b8e1d"
    redactor.register(early)
    writer = _ResultWriter()
    writer.put(tmp_path, "a-result.json", f'{{"log": "{early} {late}"}}'.encode())
    writer.flush()
    path = tmp_path / "a-result.json"
    assert early not in path.read_text() and MASK in path.read_text()
    assert set(_still_as_written(writer.written)) == {path}  # nothing changed: the manifest may trust it

    redactor.register(late)  # learnt after the file was written: it may be in it, so it is read again
    assert _still_as_written(writer.written) == {}


def test_a_file_changed_after_it_was_written_is_not_trusted(tmp_path):
    from patchgate.evidence.manifests import _still_as_written

    writer = _ResultWriter()
    writer.put(tmp_path, "b-result.json", b'{"n": 1}')
    writer.flush()
    (tmp_path / "b-result.json").write_bytes(b'{"n": 22}')
    assert _still_as_written(writer.written) == {}
