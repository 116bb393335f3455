"""One way to hash a file, for candidate packages, staged copies, probe scripts and evidence.

A candidate's package can be gigabytes, and a run needs its SHA-256 in several places (the inputs check of
``patchgate validate``, the suites' own load of the candidate, staging on each VM, the run manifest): hashing it
each time cost a run 0.8 s of CPU per GiB per place on the bench machine (docs/performance.md, staging).
:func:`package_sha256` hashes a package once per file identity (device, inode, size, modification and change
times, all in nanoseconds: any write changes one of them) and keeps the digest for the process; ``patchgate
validate`` hands the digests it took to the suites' process (:data:`PACKAGE_HASHES_ENV`), which takes one only
while the file's identity is still the one hashed. Evidence files are always hashed afresh (:func:`sha256_file`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

CHUNK = 1 << 20
PACKAGE_HASHES_ENV = "PATCHGATE_PACKAGE_HASHES"  # JSON: [[path, dev, ino, size, mtime_ns, ctime_ns, sha256], ...]

_Identity = tuple[str, int, int, int, int, int]
_known: dict[_Identity, str] = {}
_locks: dict[_Identity, threading.Lock] = {}
_guard = threading.Lock()
_inherited = False


def sha256_file(path: Path) -> str:
    """Lower-case hex SHA-256 of a file, read into one reused 1 MiB buffer (packages can be gigabytes)."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with Path(path).open("rb", buffering=0) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def _identity(path: Path) -> _Identity:
    info = os.stat(path)
    return (str(Path(path).resolve()), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def package_sha256(path: Path) -> str:
    """The package's SHA-256, hashed once for as long as the file stays the same file with the same content
    times; the callers that need it at once wait for one hash."""
    _inherit()
    key = _identity(path)
    with _guard:
        if key in _known:
            return _known[key]
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _known:
                return _known[key]
        digest = sha256_file(path)
        with _guard:
            _known[key] = digest
        return digest


def exported_hashes() -> str:
    """The digests this process took, for :data:`PACKAGE_HASHES_ENV` of a child process."""
    with _guard:
        return json.dumps([[*key, digest] for key, digest in _known.items()])


def _inherit() -> None:
    """Take the digests the parent ``patchgate validate`` passed down (once; a malformed value is ignored)."""
    global _inherited
    if _inherited:
        return
    _inherited = True
    try:
        rows = json.loads(os.environ.get(PACKAGE_HASHES_ENV) or "[]")
        entries = {(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])): str(r[6]) for r in rows}
    except (ValueError, TypeError, IndexError):
        return
    with _guard:
        for key, digest in entries.items():
            _known.setdefault(key, digest)
