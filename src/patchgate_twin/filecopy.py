"""The twin's side of file staging: pypsrp's copy script and the ``stage-*`` op scripts.

``pypsrp.Client.copy`` (and patchgate's psrp session, which sends the same script on its long-lived pool)
runs ``copy.ps1`` with the destination as its first unbound argument and the file as pipeline input: one
base64 chunk per input object, then a final object holding base64(sha1 hex) of the whole file. The real
script writes a temp file, checks the SHA-1, moves it over the destination and prints the full path; the
twin does the same into the VM's files on its disk folder (patchgate_twin.guestfiles), chunk by chunk as the
input arrives (:class:`Upload`): a package is never held in memory.

The ``stage-prepare`` op reads and writes only the VM's files too, so a TwinShell can hand it here
(``handle_staging``) and keep only ``install`` for its update model; ``staged_files`` is the install op's own
check of the staged files (their SHA-256 on the VM), shared by every stand-in host.
"""

from __future__ import annotations

import base64
import binascii
import json
import ntpath
import re
from typing import Any, Iterable

from patchgate_twin.guestfiles import BlobStore, BlobWriter, GuestFiles
from patchgate_twin.shell import PipelineOutput, Statement

# Lines of pypsrp's copy.ps1 that no other script is likely to carry together.
_COPY_MARKERS = (
    "$MyInvocation.UnboundArguments[0]",
    "[System.IO.File]::Create($path)",
    "Transport failure, hash mismatch",
)

_ENV = {
    "TEMP": r"C:\Windows\TEMP",
    "TMP": r"C:\Windows\TEMP",
    "PROGRAMDATA": r"C:\ProgramData",
    "SYSTEMROOT": r"C:\Windows",
    "WINDIR": r"C:\Windows",
    "SYSTEMDRIVE": "C:",
    "USERPROFILE": r"C:\Users\Administrator",
}
DEFAULT_LOCATION = r"C:\Users\Administrator\Documents"

OP_MARKER = re.compile(r"^\s*#\s*patchgate-op:\s*(?P<op>[A-Za-z0-9_-]+)\s*$", re.MULTILINE)


def is_copy_script(script: str) -> bool:
    return all(marker in script for marker in _COPY_MARKERS)


def op_name(script: str) -> str | None:
    """The ``# patchgate-op: <name>`` marker on a script's first line, if any."""
    first = script.lstrip().partition("\n")[0]  # the first line only: a capture script is 33 kB
    match = OP_MARKER.match(first)
    return match.group("op") if match else None


def key(path: str) -> str:
    """The ``files`` key for a Windows path: normalised and lower-cased (NTFS is case-insensitive)."""
    return ntpath.normpath(path).lower()


def resolve(path: str, expand: bool = False) -> str:
    if expand:
        path = re.sub(r"%([^%]+)%", lambda m: _ENV.get(m.group(1).upper(), m.group(0)), path)
    if not ntpath.isabs(path) or not ntpath.splitdrive(path)[0]:
        path = ntpath.join(DEFAULT_LOCATION, path)
    return ntpath.normpath(path)


class Upload:
    """The input of one copy pipeline, written to the VM's disk folder as it arrives (``append`` per input
    object, as the WSMan endpoint receives them). The last object is the SHA-1 of the whole file, so each
    chunk is written when the next one arrives."""

    def __init__(self, store: BlobStore) -> None:
        self._writer: BlobWriter = store.writer()
        self._pending: Any = None
        self._count = 0
        self.error: str | None = None

    def append(self, item: Any) -> None:
        if self._pending is not None and self.error is None:
            try:
                self._writer.write(base64.b64decode(str(self._pending or "")))
            except (binascii.Error, ValueError) as exc:
                self.error = f"Exception calling \"FromBase64String\": {exc}"
        self._pending = item
        self._count += 1

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)

    def finish(self) -> tuple[str | None, str | None]:
        """(SHA-256 of the stored file, None) or (None, the copy script's error)."""
        if self._count == 0:
            self._writer.abort()
            return None, "Exception calling \"GetString\": the file data is missing"
        try:
            expected = base64.b64decode(str(self._pending or "")).decode("utf-8", "replace")
        except (binascii.Error, ValueError) as exc:
            self.error = self.error or f"Exception calling \"FromBase64String\": {exc}"
        if self.error is not None:
            self._writer.abort()
            return None, self.error
        assert self._writer.sha1 is not None
        actual = self._writer.sha1.hexdigest()
        if actual != expected:
            self._writer.abort()
            return None, f"Transport failure, hash mismatch\r\nActual: {actual}\r\nExpected: {expected}"
        return self._writer.commit(), None

    def abort(self) -> None:
        self._writer.abort()


def run_copy(files: GuestFiles, statement: Statement, input_data: "list[Any] | Upload") -> PipelineOutput:
    """What copy.ps1 does on Windows, into the VM's files; a hash mismatch is the script's own terminating
    error. ``input_data``: the objects, or an :class:`Upload` that already wrote them as they came."""
    upload = input_data if isinstance(input_data, Upload) else None
    if upload is None:
        upload = Upload(files.store)
        upload.extend(input_data)
    if not statement.arguments:
        upload.abort()
        return PipelineOutput(errors=["Cannot index into a null array."], failed=True)
    dest = resolve(str(statement.arguments[0]),
                   expand=len(statement.arguments) > 1 and statement.arguments[1] is True)
    digest, error = upload.finish()
    if digest is None:
        return PipelineOutput(errors=[error or "the copy failed"], failed=True)
    files.link(key(dest), digest)
    return PipelineOutput(output=[dest])


def handle_staging(files: GuestFiles, op: str, parameters: dict[str, Any]) -> PipelineOutput | None:
    """Answer ``stage-prepare`` exactly as remoting/scripts/stage-prepare.ps1 prints it."""
    if op == "stage-prepare":
        path = resolve(str(parameters.get("Path", "")))
        return PipelineOutput(output=[json.dumps({"Path": path, "Exists": True}, separators=(",", ":"))])
    return None


def staged_files(files: GuestFiles, package_path: str,
                 expected: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The install op's first step: each expected file (name -> SHA-256) in the package's folder, hashed ON THE
    VM, as ``{"Path", "Sha256"}`` entries (``Sha256`` null when missing), and whether all are the approved ones."""
    path = resolve(package_path)
    inside = key(path).rstrip("\\") + "\\"
    is_folder = any(name.startswith(inside) for name in files.keys())  # as Test-Path -PathType Container
    folder = path if is_folder else ntpath.dirname(path)
    staged, intact = [], True
    for name in sorted(expected, key=str):
        full = ntpath.join(folder, str(name))
        digest = file_hash(files, key(full))
        staged.append({"Path": full, "Sha256": digest})
        intact = intact and digest is not None and digest == str(expected[name]).upper()
    return staged, intact


def file_hash(files: GuestFiles, name: str) -> str | None:
    """Get-FileHash of a file on the VM, upper-case hex; None when it is not there. The store is
    content-addressed: a file's name there is the SHA-256 of the bytes as they were written (BlobWriter hashes
    them on the way to the disk, and nothing changes a stored file), so the digest is read from the name instead
    of reading gigabytes back once more."""
    if not files.exists(name):
        return None
    return files.index[name].upper()


def is_copy_pipeline(statements: list[Statement]) -> bool:
    return bool(statements) and is_copy_script(statements[0].script)


def handle(files: GuestFiles, statements: list[Statement],
           input_data: "list[Any] | Upload") -> PipelineOutput | None:
    """Route a pipeline to the copy script or a staging op; ``None`` when it is neither."""
    if not statements:
        return None
    first = statements[0]
    if is_copy_script(first.script):
        return run_copy(files, first, input_data)
    op = op_name(first.script)
    if op:
        return handle_staging(files, op, first.parameters)
    return None
