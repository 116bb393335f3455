"""``python -m bench.tls_floor``: what sending one GiB over TLS costs the sender on this machine, in Python.

The harness's content server sends each VM its package over HTTPS (docs/remoting.md). Its CPU per GiB has a floor
that no change to the server's own code removes: reading the file, encrypting it and the loopback TCP sends. This
measures that floor, side by side, for the ways Python's standard ``ssl`` module can send a file:

* ``SSLSocket``: ``sendall`` of 1 MiB read into one reused buffer (what the content server does);
* ``SSLObject``: encryption into a memory BIO from an ``mmap`` of the file, then one plain ``sendall`` per MiB (no
  read copy, and large TCP sends instead of one per 16 KiB TLS record);

each with TLS 1.3's default suite (AES-256-GCM here) and TLS 1.2 with AES-128-GCM. The receiver is a separate
process that discards what arrives. Measured: the sending thread's CPU (``time.thread_time``: user and system,
the loopback's send path included), per GiB, the median of ``--repeats`` runs. Nothing here is a patchgate code
path except the certificate, made as the content server makes it.
"""

from __future__ import annotations

import argparse
import mmap
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from patchgate.remoting.content import make_certificate

CHUNK = 1 << 20
TLS12_AES128 = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"
RECEIVER = """
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
tls = context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
buffer = bytearray(1 << 20)
while tls.recv_into(buffer):
    pass
"""


def _context(cert: Path, key: Path, tls12_aes128: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if tls12_aes128:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(TLS12_AES128)
    return context


def _send_sslsocket(context: ssl.SSLContext, raw: socket.socket, package: Path) -> float:
    tls = context.wrap_socket(raw, server_side=True)
    began = time.thread_time()
    buffer = memoryview(bytearray(CHUNK))
    with package.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            tls.sendall(buffer[:count])
    spent = time.thread_time() - began
    tls.close()
    return spent


def _send_sslobject(context: ssl.SSLContext, raw: socket.socket, package: Path) -> float:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))
    if outgoing.pending:
        raw.sendall(outgoing.read())
    began = time.thread_time()
    with package.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        for offset in range(0, len(mapped), CHUNK):
            tls.write(view[offset:offset + CHUNK])
            raw.sendall(outgoing.read())
        view.release()
    spent = time.thread_time() - began
    raw.close()
    return spent


def _one(way: str, context: ssl.SSLContext, package: Path) -> float:
    listener = socket.create_server(("127.0.0.1", 0))
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(listener.getsockname()[1])])
    try:
        raw, _ = listener.accept()
        send = _send_sslsocket if way == "SSLSocket" else _send_sslobject
        return send(context, raw, package)
    finally:
        listener.close()
        receiver.wait(timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512, help="bytes sent per run, in MiB (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per way; the median is shown (default 5)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="patchgate-tls-floor-") as folder:
        cert, key, _ = make_certificate("127.0.0.1", Path(folder), "tls-floor")
        package = Path(folder) / "package.bin"
        with package.open("wb") as handle:
            handle.truncate(options.mib << 20)
        with package.open("rb") as handle:  # in the page cache, as a package the run has just hashed
            while handle.read(1 << 24):
                pass
        table = Table(title=f"Sender CPU per GiB over TLS on loopback ({options.mib} MiB per run, median of "
                            f"{options.repeats})")
        for column in ("way", "TLS", "sender CPU per GiB", "all runs"):
            table.add_column(column)
        for way in ("SSLSocket", "SSLObject"):
            for tls12 in (False, True):
                context = _context(cert, key, tls12)
                per_gib = [_one(way, context, package) * 1024 / options.mib for _ in range(options.repeats)]
                table.add_row(way, "1.2 AES-128-GCM" if tls12 else "1.3 default", f"{statistics.median(per_gib):.2f} s",
                              ", ".join(f"{x:.2f}" for x in per_gib))
        Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
