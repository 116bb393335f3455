"""The twin's side of the ``fetch`` op: the twin VM downloads the package for real, from the twin's process.

It does what remoting/scripts/fetch.ps1 does on Windows along its HTTPS path: keeps a file already there with the
expected SHA-256, connects to the URL, checks that the server's certificate is the pinned one, downloads into a
partial file on the VM's disk folder (patchgate_twin.guestfiles, never in memory), resumes with a Range request
when the connection drops, hashes what arrived and keeps it only when it is the approved file. It prints the
op's document. A UNC share is one the twin serves (patchgate_twin.shares), or out of its reach. An http(s) share
is any server the twin's process can reach: with no pin, its certificate is checked as Windows checks it, against
the machine's roots and the CA the lab's VMs trust (``hypervisor.settings.trusted_ca``), and the share's account
is sent when the server asks for Basic authentication, as HttpWebRequest and BITS answer a challenge
(HttpWebRequest.PreAuthenticate is false by default: "Client: GET someUrl / Server: 401 WWW-Authenticate Basic /
Client: GET with Authorization headers", https://learn.microsoft.com/dotnet/api/system.net.httpwebrequest.preauthenticate).
An untrusted certificate fails with .NET Framework's WebException text "The underlying connection was closed: Could
not establish trust relationship for the SSL/TLS secure channel." (quoted in
https://khalidabuhakmeh.com/validating-ssl-certificates-with-dotnet-servicepointmanager; BITS's own error for it
is not modelled: the op falls back to HttpWebRequest, whose words these are).

Faults (docs/twin.md): ``download-drops`` (the connection is cut half-way, N times, default 1: the download
resumes), ``download-corrupts`` (one byte of what arrives is wrong: the hash check refuses the file),
``download-stalls`` (the transfer stops after its first chunk and never goes on: the stage timeout ends it).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ntpath
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from patchgate_twin import filecopy
from patchgate_twin.faults import Fault
from patchgate_twin.guestfiles import BlobWriter, GuestFiles
from patchgate_twin.settings import TwinShare
from patchgate_twin.shares import copy_from_share
from patchgate_twin.shell import PipelineOutput, TwinFault

CHUNK = 1 << 20
SOCKET_TIMEOUT = 60.0  # the op's HttpWebRequest.ReadWriteTimeout
MAX_ATTEMPTS = 5


class _Dropped(Exception):
    """The connection ended before the file did (the op's IOException)."""


@dataclass
class _Download:
    url: urllib.parse.SplitResult
    size: int
    pin: str
    faults: dict[str, Fault]
    stop: threading.Event
    user: str = ""  # the share's account (ShareUser / SharePassword), sent when the server asks for it
    password: str = ""
    trusted_ca: str | None = None
    drops_left: int = 0
    corrupted: bool = False
    resumes: int = 0
    downloaded: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def faulty(self) -> bool:
        """Whether a download fault may still change a chunk (else the chunks go to the disk as they are)."""
        return bool(self.drops_left) or "download-stalls" in self.faults or (
            "download-corrupts" in self.faults and not self.corrupted)


def run_fetch(files: GuestFiles, parameters: dict[str, Any], faults: dict[str, Fault],
              stop: threading.Event, shares: list[TwinShare] | None = None, *,
              trusted_ca: str | None = None) -> PipelineOutput:
    destination = filecopy.resolve(str(parameters.get("Destination", "")))
    name = filecopy.key(destination)
    expected = str(parameters.get("Sha256", "")).upper()
    removed = _keep_only(files, destination, [str(k) for k in parameters.get("Keep") or []])
    if files.exists(name) and filecopy.file_hash(files, name) == expected:
        return _document(destination, expected, "present", 0, True, 0,
                         [*removed, "Already present with the expected SHA-256; not downloaded"])
    url = str(parameters.get("Url", ""))
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        return copy_from_share(files, parameters, shares or [], removed)
    drops = faults.get("download-drops")
    job = _Download(url=parsed, size=int(parameters.get("Size") or 0), pin=str(parameters.get("Fingerprint") or ""),
                    faults=faults, stop=stop, user=str(parameters.get("ShareUser") or ""),
                    password=str(parameters.get("SharePassword") or ""), trusted_ca=trusted_ca,
                    drops_left=int(drops.argument) if drops and drops.argument and drops.argument.isdigit()
                    else (1 if drops else 0), log=removed)
    writer = files.store.writer(sha1=False)
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                writer = _attempt(job, writer, files)
                break
            except _Dropped as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                job.resumes += 1
                job.log.append(f"Attempt {attempt} ended early ({exc}); resuming")
    except (_Dropped, OSError, ssl.SSLError, http.client.HTTPException) as exc:
        writer.abort()
        return PipelineOutput(errors=[f"Exception calling \"GetResponse\": {exc}"], failed=True)
    except _Refused as exc:
        writer.abort()
        return PipelineOutput(errors=[str(exc)], failed=True)
    actual = writer.sha256.hexdigest().upper()
    if actual != expected:
        writer.abort()
        job.log.append(f"Refused: the downloaded file has SHA-256 {actual}, expected {expected}; it was deleted")
        files.index.pop(name, None)
        return _document(destination, None, "http", job.downloaded, False, job.resumes, job.log)
    files.link(name, writer.commit())
    return _document(destination, actual, "http", job.downloaded, False, job.resumes, job.log)


def _keep_only(files: GuestFiles, destination: str, keep: list[str]) -> list[str]:
    """As the op does first: the destination's folder keeps the candidate's packages (``keep``) and nothing else;
    returns the op's log lines for what it removed."""
    folder = filecopy.key(ntpath.dirname(destination)) + "\\"
    wanted = {k.lower() for k in keep} | {ntpath.basename(destination).lower()}
    removed = []
    for name in files.keys():
        leaf = name[len(folder):]
        if name.startswith(folder) and "\\" not in leaf and leaf not in wanted:
            files.index.pop(name, None)
            removed.append(f"Removed {leaf}: not a package of this candidate (DISM looks for checkpoints in this "
                           "folder)")
    return removed


class _Refused(Exception):
    """The server is not the pinned one, or answered with an HTTP error: the op fails."""


def _attempt(job: _Download, writer: BlobWriter, files: GuestFiles) -> BlobWriter:
    """One request from what the partial file holds; returns the writer holding the file (a new one when the
    server sent the whole file again)."""
    connection = _connect(job)
    try:
        headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
        path = job.url.path + (f"?{job.url.query}" if job.url.query else "")
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        if response.status == 401 and job.user and "basic" in response.getheader("WWW-Authenticate", "").lower():
            response.read()  # the challenge: answered once with the share's account, on the same connection
            token = base64.b64encode(f"{job.user}:{job.password}".encode()).decode()
            connection.request("GET", path, headers={**headers, "Authorization": f"Basic {token}"})
            response = connection.getresponse()
        if response.status not in (200, 206):
            raise _Refused(f"Exception calling \"GetResponse\": The remote server returned an error: "
                           f"({response.status}) {response.reason}.")
        if response.status == 200 and writer.size:
            writer.abort()  # the server ignored the Range: start over, as FileMode.Create does
            writer = files.store.writer(sha1=False)
        buffer = memoryview(bytearray(CHUNK))  # one buffer for the whole body: no fresh 1 MiB object per chunk
        while True:
            count = response.readinto(buffer)
            if not count:
                break
            data: bytes | memoryview = buffer[:count]
            try:
                if job.faulty:
                    data = _faulted(job, writer.size, bytes(data))
            except _DroppedAfter as cut:
                writer.write(cut.arrived)  # what arrived before the cut stays in the partial file
                job.downloaded += len(cut.arrived)
                raise
            writer.write(data)
            job.downloaded += len(data)
        if job.size and writer.size < job.size:
            raise _Dropped(f"the connection closed at {writer.size} of {job.size} bytes")
        return writer
    finally:
        connection.close()


def _connect(job: _Download) -> http.client.HTTPConnection:
    host, port = job.url.hostname or "", job.url.port
    if job.url.scheme == "http":
        connection: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=SOCKET_TIMEOUT)
        connection.connect()
        return connection
    if job.pin:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # no CA signed the per-run certificate: the pin below is the check
    else:  # a share: its certificate is checked as the VM's own trust store would
        context = ssl.create_default_context()
        if job.trusted_ca:
            context.load_verify_locations(cafile=job.trusted_ca)
    secure = http.client.HTTPSConnection(host, port, timeout=SOCKET_TIMEOUT, context=context)
    try:
        secure.connect()
    except ssl.SSLCertVerificationError as exc:
        raise _Refused("Exception calling \"GetResponse\": The underlying connection was closed: Could not establish "
                       f"trust relationship for the SSL/TLS secure channel. ({exc.verify_message})") from None
    if job.pin:
        der = secure.sock.getpeercert(binary_form=True) if secure.sock else None
        seen = hashlib.sha256(der or b"").hexdigest().upper()
        if seen != job.pin.upper():
            secure.close()
            raise _Refused("Exception calling \"AuthenticateAsClient\": The remote certificate is invalid according "
                           "to the validation procedure. (its SHA-256 is not the pinned fingerprint)")
    return secure


def _faulted(job: _Download, offset: int, data: bytes) -> bytes:
    """What the twin's faults do to a chunk arriving at ``offset`` of the file."""
    middle = job.size // 2
    if "download-stalls" in job.faults:
        job.stop.wait()  # the transfer never goes on: the harness's stage timeout (or the run's end) ends it
        raise TwinFault("hang", "the download stalled")
    if "download-corrupts" in job.faults and not job.corrupted and offset <= middle < offset + len(data):
        job.corrupted = True
        index = middle - offset
        data = data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]
    if job.drops_left and offset + len(data) > middle:
        job.drops_left -= 1
        keep = max(1, middle - offset)
        raise _DroppedAfter(data[:keep])
    return data


class _DroppedAfter(_Dropped):
    """A drop in the middle of a chunk: the bytes before the cut arrived."""

    def __init__(self, arrived: bytes) -> None:
        super().__init__("the connection was reset by the network (twin fault 'download-drops')")
        self.arrived = arrived


def _document(path: str, digest: str | None, method: str, downloaded: int, skipped: bool, resumes: int,
              log: list[str]) -> PipelineOutput:
    """The op's document; ``digest``: the SHA-256 of what is at ``path`` now (hashed once, as the op does)."""
    return PipelineOutput(output=[json.dumps({"Path": path, "Sha256": digest, "Bytes": downloaded,
                                              "Skipped": skipped, "Method": method, "Resumes": resumes,
                                              "Log": log}, separators=(",", ":"))])
