"""The run's content server: the VMs pull the candidate's packages from the harness over HTTPS.

Pushing a package through WSMan costs the harness a base64 pipeline per VM (issue: 22 MB/s for win_copy against
130 MB/s over HTTPS, ansible/ansible#23450); here each VM downloads it itself, and the harness only streams the
file from disk through TLS. What it guarantees:

* **one URL per package per run** (``/p/<token>/<sha256>/<name>``): the token is 32 random bytes, registered with
  the redactor, valid only while this run's server runs, and it names exactly one file by its SHA-256
  (content-addressed: two candidates' identical files are one entry). Anything else is 404, saying nothing.
* **a per-run certificate** (self-signed, made here with ``cryptography``): its SHA-256 fingerprint goes to the
  fetch op as a parameter and the VM pins it, so the lab needs no CA and no trust store change.
* **HEAD and single byte-range GET** with Content-Length and Content-Range, which BITS requires of a download
  server ("HTTP Requirements for BITS Downloads",
  https://learn.microsoft.com/windows/win32/bits/http-requirements-for-bits-downloads) and which lets a dropped
  download resume where it stopped.
* **started and stopped with the run**: ``stop`` closes the listener and cuts every transfer still in flight
  (a VM that stalls mid-file holds no thread of the harness after the run), also after Ctrl-C.

Bytes sent are counted per VM (the ``vm`` query parameter the fetch op adds) for the progress view.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import secrets
import socket
import ssl
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from patchgate.remoting.serving import ServingThread
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

log = logging.getLogger(__name__)

SEND_CHUNK = 1 << 20
TOKEN_BYTES = 32
VM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
IDLE_TIMEOUT = 120.0  # a connection that sends no request for this long is closed


@dataclass(frozen=True)
class Offer:
    """Where a VM fetches one package from, and what it must check."""

    url: str
    sha256: str  # lower-case hex
    size: int
    fingerprint: str  # SHA-256 of the server certificate (DER), upper-case hex, no separators
    credentials: Credentials | None = None  # the account that reads a share (its repr masks the password)


@dataclass(frozen=True)
class _Entry:
    path: Path
    sha256: str
    size: int


class ContentServer:
    """HTTPS on ``address:port`` (0: any free port) for one run. ``start``, ``offer`` per package, ``stop``."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0, *, run_id: str = "") -> None:
        self.address = address
        self.port = port
        self.run_id = run_id
        self.fingerprint = ""
        self._entries: dict[str, _Entry] = {}  # token -> file
        self._tokens: dict[str, str] = {}  # sha256 -> token
        self._lock = threading.Lock()
        self._sent: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._serving: ServingThread | None = None
        self._connections: set[socket.socket] = set()

    # ------------------------------------------------------------ lifetime

    def start(self) -> None:
        if self._server is not None:
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # the files exist only for the load (0700 folder): no key stays on disk, and a run killed later leaves nothing
        with tempfile.TemporaryDirectory(prefix="patchgate-content-") as folder:
            cert, key, self.fingerprint = make_certificate(self.address, Path(folder), self.run_id)
            context.load_cert_chain(cert, key)
        self._server = _Server((self.address, self.port), _Handler, self, context)
        self.port = int(self._server.server_address[1])
        self._serving = ServingThread(self._server, "patchgate-content")
        self._serving.start()
        log.info("content server listening on https://%s:%d (certificate sha256 %s)", self.address, self.port,
                 self.fingerprint)

    def stop(self) -> None:
        """Close the listener and cut every transfer in flight; safe to call twice."""
        server, self._server = self._server, None
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()
        if server is not None:
            server.server_close()
        with self._lock:
            connections = list(self._connections)
            self._entries.clear()  # no token fetches anything any more
            self._tokens.clear()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "ContentServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # ------------------------------------------------------------ packages

    def offer(self, path: Path, sha256: str, *, vm: str | None = None) -> Offer:
        """The URL of ``path`` (whose SHA-256 the caller checked) for this run; the same file gets one token."""
        if self._server is None:
            raise RuntimeError("the content server is not running")
        digest = sha256.lower()
        with self._lock:
            token = self._tokens.get(digest)
            if token is None:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                redactor.register(token)
                self._tokens[digest] = token
                self._entries[token] = _Entry(Path(path), digest, Path(path).stat().st_size)
            entry = self._entries[token]
        host = f"[{self.address}]" if ":" in self.address else self.address
        query = f"?vm={urllib.parse.quote(vm)}" if vm else ""
        url = f"https://{host}:{self.port}/p/{token}/{digest}/{urllib.parse.quote(entry.path.name)}{query}"
        return Offer(url=url, sha256=digest, size=entry.size, fingerprint=self.fingerprint)

    def sent(self, vm: str) -> int:
        """Bytes of package content sent to ``vm`` so far (every request, resumed ones included)."""
        with self._lock:
            return self._sent.get(vm, 0)

    def requests(self, vm: str) -> int:
        with self._lock:
            return self._requests.get(vm, 0)

    # ------------------------------------------------------------ for the handler

    def _lookup(self, token: str, digest: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(token)
        return entry if entry is not None and entry.sha256 == digest.lower() else None

    def _count(self, vm: str | None, sent: int = 0, request: bool = False) -> None:
        if not vm:
            return
        with self._lock:
            self._sent[vm] = self._sent.get(vm, 0) + sent
            if request:
                self._requests[vm] = self._requests.get(vm, 0) + 1

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: ContentServer,
                 context: ssl.SSLContext) -> None:
        self.owner = owner
        self.context = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake runs on the connection's own thread, never in the accept loop."""
        request.settimeout(IDLE_TIMEOUT)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)  # takes the descriptor over
        except (ssl.SSLError, OSError) as exc:
            log.debug("content server: TLS handshake from %s failed: %s", client_address[0], exc)
            return
        self.owner._track(wrapped, True)
        try:
            self.RequestHandlerClass(wrapped, client_address, self)
        finally:
            self.owner._track(wrapped, False)
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("content server: a connection from %s ended with an error", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "patchgate-content"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Never log request lines: they carry the token (the redactor masks it anyway)."""

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        owner = self.server.owner
        parsed = urllib.parse.urlsplit(self.path)
        vm = urllib.parse.parse_qs(parsed.query).get("vm", [""])[0]
        vm = vm if VM_RE.match(vm) else ""
        parts = parsed.path.split("/")
        entry = owner._lookup(parts[2], parts[3]) if len(parts) == 5 and parts[1] == "p" else None
        if entry is None:
            self._plain(404, "not found")
            return
        try:
            handle = entry.path.open("rb", buffering=0)
        except OSError:
            self._plain(410, "gone")
            return
        with handle:
            start, end = 0, entry.size - 1
            status = 200
            wanted = self.headers.get("Range")
            if wanted:
                span = _range(wanted, entry.size)
                if span is None:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{entry.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = span
                status = 206
            length = max(0, end - start + 1)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", f'"{entry.sha256}"')
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{entry.size}")
            self.end_headers()
            owner._count(vm, request=True)
            if not body or length == 0:
                return
            handle.seek(start)
            left = length
            buffer = memoryview(bytearray(SEND_CHUNK))  # one buffer per transfer: no fresh 1 MiB per chunk
            try:
                while left > 0:
                    read = handle.readinto(buffer[:min(SEND_CHUNK, left)])
                    if not read:
                        break
                    self.wfile.write(buffer[:read])
                    left -= read
                    owner._count(vm, read)
            except (ConnectionError, ssl.SSLError, OSError, ValueError):
                self.close_connection = True  # the VM went away or the run stopped: it resumes with a Range

    def _plain(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range (``bytes=a-b``, ``a-``, ``-n``) within ``size``; None when unsatisfiable or several."""
    match = RANGE_RE.match(header.strip())
    if not match or size == 0:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        count = int(last)
        return (max(0, size - count), size - 1) if count > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


def make_certificate(address: str, folder: Path, run_id: str) -> tuple[Path, Path, str]:
    """A self-signed certificate for ``address`` valid for two days; returns (cert, key, SHA-256 fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"patchgate content {run_id}"[:64])])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        alt = x509.DNSName(address)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "content.crt", folder / "content.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    return cert_path, key_path, fingerprint

