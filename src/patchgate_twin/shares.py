"""The twin's side of the ``fetch`` op for a UNC share: the shares the twin serves (``hypervisor.settings.shares``).

A real VM maps the share with New-PSDrive -Credential and copies the package from it (remoting/scripts/fetch.ps1).
Here the share is a folder on this machine; the twin checks the account the op was given against the one the
share was set up with (its password read from the twin process's environment when the VM connects) and refuses
a missing or wrong one as Windows does, with the message of a failed New-PSDrive and nothing of the password.
What the VM copies is streamed to its disk folder and hashed as it arrives, as a download is.
"""

from __future__ import annotations

import hmac
import json
import ntpath
import os
from pathlib import Path
from typing import Any

from patchgate_twin import filecopy
from patchgate_twin.guestfiles import GuestFiles
from patchgate_twin.settings import TwinShare
from patchgate_twin.shell import PipelineOutput

CHUNK = 1 << 20
# The messages of New-PSDrive / Copy-Item on Windows for each refusal (Win32 errors 86, 5 and 53).
WRONG_ACCOUNT = "New-PSDrive : The specified network password is not correct."
NO_ACCOUNT = "Copy-Item : Access is denied."
NOT_FOUND = "Copy-Item : The network path was not found."


def copy_from_share(files: GuestFiles, parameters: dict[str, Any], shares: list[TwinShare],
                    log: list[str]) -> PipelineOutput:
    url = str(parameters.get("Url", ""))
    destination = filecopy.resolve(str(parameters.get("Destination", "")))
    share, relative = _locate(url, shares)
    if share is None:
        return _failed(f"{NOT_FOUND} (the twin serves no share at {url})")
    refusal = _refusal(share, str(parameters.get("ShareUser") or ""), str(parameters.get("SharePassword") or ""))
    if refusal:
        return _failed(f"{refusal} ({share.unc})")
    source = Path(share.folder, *relative)
    if not source.is_file():
        return _failed(f"Copy-Item : Cannot find path '{url}' because it does not exist.")
    writer = files.store.writer(sha1=False)
    with source.open("rb", buffering=0) as handle:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while read := handle.readinto(buffer):
            writer.write(view[:read])  # hashed and written from the one buffer
    expected = str(parameters.get("Sha256", "")).upper()
    actual = writer.sha256.hexdigest().upper()
    name = filecopy.key(destination)
    if actual != expected:
        writer.abort()
        files.index.pop(name, None)
        log.append(f"Refused: the downloaded file has SHA-256 {actual}, expected {expected}; it was deleted")
        return _document(destination, None, writer.size, log)
    size = writer.size
    files.link(name, writer.commit())
    return _document(destination, actual, size, log)


def _locate(url: str, shares: list[TwinShare]) -> tuple[TwinShare | None, list[str]]:
    """The share ``url`` is in and the path below its root (no ``..``, nothing outside the folder)."""
    for share in shares:
        root = share.unc.rstrip("\\").lower() + "\\"
        if url.lower().startswith(root):
            parts = [p for p in url[len(root):].split("\\") if p]
            if parts and all(p not in (".", "..") and "/" not in p for p in parts):
                return share, parts
    return None, []


def _refusal(share: TwinShare, username: str, password: str) -> str:
    """Why the share refuses this account ('' when it reads it)."""
    if not share.username:
        return ""
    if not username:
        return NO_ACCOUNT
    expected = os.environ.get(share.password_env or "", "")
    same_user = ntpath.basename(username).lower() == ntpath.basename(share.username).lower()
    if not expected or not same_user or not hmac.compare_digest(password.encode(), expected.encode()):
        return WRONG_ACCOUNT
    return ""


def _failed(message: str) -> PipelineOutput:
    return PipelineOutput(errors=[message], failed=True)


def _document(path: str, digest: str | None, size: int, log: list[str]) -> PipelineOutput:
    return PipelineOutput(output=[json.dumps({"Path": path, "Sha256": digest, "Bytes": size, "Skipped": False,
                                              "Method": "copy", "Resumes": 0, "Log": log}, separators=(",", ":"))])
