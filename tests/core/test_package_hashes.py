"""A package is hashed once per file identity, and a changed file is hashed again (evidence.hashing)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from patchgate.evidence import hashing


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "_known", {})
    monkeypatch.setattr(hashing, "_locks", {})
    monkeypatch.setattr(hashing, "_inherited", False)
    monkeypatch.delenv(hashing.PACKAGE_HASHES_ENV, raising=False)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = hashing.sha256_file

    def counted(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(hashing, "sha256_file", counted)
    return seen


def test_sha256_file_matches_hashlib_across_chunk_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "p.msu"
    data = os.urandom(hashing.CHUNK * 2 + 17)
    path.write_bytes(data)
    assert hashing.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_a_package_is_hashed_once_while_it_is_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _counting(monkeypatch)
    path = tmp_path / "p.msu"
    path.write_bytes(b"one")
    first = hashing.package_sha256(path)
    assert hashing.package_sha256(path) == first == hashlib.sha256(b"one").hexdigest()
    assert len(seen) == 1


def test_a_rewritten_package_is_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _counting(monkeypatch)
    path = tmp_path / "p.msu"
    path.write_bytes(b"one")
    hashing.package_sha256(path)
    info = path.stat()
    path.write_bytes(b"two")  # same size; the change time moves even when the modification time is put back
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert hashing.package_sha256(path) == hashlib.sha256(b"two").hexdigest()
    assert len(seen) == 2


def test_a_child_takes_the_parents_digests_only_for_the_same_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.msu"
    path.write_bytes(b"one")
    hashing.package_sha256(path)
    exported = hashing.exported_hashes()
    monkeypatch.setattr(hashing, "_known", {})
    monkeypatch.setattr(hashing, "_inherited", False)
    monkeypatch.setenv(hashing.PACKAGE_HASHES_ENV, exported)
    seen = _counting(monkeypatch)
    assert hashing.package_sha256(path) == hashlib.sha256(b"one").hexdigest()
    assert seen == []
    path.write_bytes(b"changed")
    assert hashing.package_sha256(path) == hashlib.sha256(b"changed").hexdigest()
    assert len(seen) == 1


def test_a_malformed_inherited_value_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hashing.PACKAGE_HASHES_ENV, "[[1, 2]]")
    path = tmp_path / "p.msu"
    path.write_bytes(b"one")
    assert hashing.package_sha256(path) == hashlib.sha256(b"one").hexdigest()
