"""A twin VM's files on the twin's disk folder, not in memory: packages can be gigabytes.

``WindowsHost.files`` maps a Windows path (lower-cased key) to the SHA-256 of its content; the content lives in the
VM's own :class:`BlobStore` folder (``<state>/twin/<lab>/files/<vm>/<sha256>``: one per VM, as each VM has its own
disk, and only the run holding the VM's lease touches it), so snapshots, reverts and the pickled disks copy names,
never bytes. A file is written through :class:`BlobWriter` (to a temporary file beside the store,
hashed as it is written, then renamed to its hash): nothing ever holds a whole file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, MutableMapping

CHUNK = 1 << 20


class BlobStore:
    """Content-addressed files of one twin lab; ``folder`` None: a private temp folder removed by ``close``."""

    def __init__(self, folder: Path | None = None) -> None:
        self._own = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="patchgate-twin-files-")) if folder is None else folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.incoming = self.folder / "incoming"
        self.incoming.mkdir(exist_ok=True)
        # a private folder goes with the store: on close, when it is collected, or when the interpreter ends
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, True) if self._own else None

    def path(self, sha256: str) -> Path:
        return self.folder / sha256.lower()

    def writer(self, *, sha1: bool = True) -> "BlobWriter":
        return BlobWriter(self, sha1=sha1)

    def put(self, chunks: Iterable[bytes]) -> str:
        """Store a stream of bytes; returns its SHA-256 (lower-case hex)."""
        writer = self.writer()
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def put_bytes(self, data: bytes) -> str:
        return self.put([data])

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def head(self, sha256: str, limit: int = 64 * 1024) -> bytes:
        """The first ``limit`` bytes (a stand-in package names its KB near the top)."""
        with self.open(sha256) as handle:
            return handle.read(limit)

    def collect(self, referenced: set[str], *, incoming: bool = False) -> int:
        """Remove every stored file the VM's host and snapshots no longer name (and, with ``incoming``, files
        left half-written by a copy that never finished); returns how many."""
        removed = 0
        for entry in self.folder.iterdir():
            if entry.is_file() and entry.name not in referenced:
                entry.unlink(missing_ok=True)
                removed += 1
        if incoming:
            for entry in self.incoming.iterdir():
                entry.unlink(missing_ok=True)
        return removed

    def close(self) -> None:
        if self._remove is not None:
            self._remove()


class BlobWriter:
    """One file being written: hashed as it goes (SHA-256 for its name, and SHA-1 for pypsrp's copy check unless
    ``sha1`` is False: a download needs only the SHA-256)."""

    def __init__(self, store: BlobStore, *, sha1: bool = True) -> None:
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.incoming)
        self._handle = os.fdopen(fd, "wb")
        self._path = Path(name)
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1() if sha1 else None
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._handle.write(data)
        self.sha256.update(data)
        if self.sha1 is not None:
            self.sha1.update(data)
        self.size += len(data)

    def commit(self) -> str:
        self._handle.close()
        digest = self.sha256.hexdigest()
        os.replace(self._path, self.store.path(digest))
        return digest

    def abort(self) -> None:
        self._handle.close()
        self._path.unlink(missing_ok=True)


class GuestFiles:
    """One VM's file system as the staging ops see it: ``index`` (path key -> SHA-256) over the lab's store."""

    def __init__(self, index: MutableMapping[str, str], store: BlobStore) -> None:
        self.index = index
        self.store = store

    def sha256(self, key: str) -> str | None:
        return self.index.get(key)

    def exists(self, key: str) -> bool:
        return key in self.index and self.store.path(self.index[key]).is_file()

    def link(self, key: str, sha256: str) -> None:
        self.index[key] = sha256.lower()

    def write_bytes(self, key: str, data: bytes) -> str:
        digest = self.store.put_bytes(data)
        self.link(key, digest)
        return digest

    def read_bytes(self, key: str) -> bytes:
        """Whole content: for small files only (tests, stand-ins); packages are read with ``chunks``."""
        with self.store.open(self.index[key]) as handle:
            return handle.read()

    def chunks(self, key: str, start: int = 0) -> Iterator[bytes]:
        with self.store.open(self.index[key]) as handle:
            handle.seek(start)
            while data := handle.read(CHUNK):
                yield data

    def head(self, key: str, limit: int = 64 * 1024) -> bytes:
        return self.store.head(self.index[key], limit)

    def keys(self) -> list[str]:
        return list(self.index)
