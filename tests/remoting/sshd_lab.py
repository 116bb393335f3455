"""A real OpenSSH server on 127.0.0.1 for the ssh remoting kind, whose ``powershell`` is the twin shim.

Own host key, authorized_keys and config in a temp dir, a free port, started and stopped by PID.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import paramiko
from support.waiting import wait_until

SSHD = "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "tools" / "powershell-shim" / "powershell"


@dataclass
class Sshd:
    port: int
    known_hosts: Path
    identity_file: Path
    user: str
    process: subprocess.Popen
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_banner(port: int, process: subprocess.Popen, log: Path, timeout: float) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    try:
        wait_until(answers, f"sshd did not answer on 127.0.0.1:{port}", timeout=timeout)
    except AssertionError as exc:
        raise RuntimeError(f"{exc}: {log.read_text(errors='replace')}") from None


def start_sshd(workdir: Path, shim_config: Path) -> Sshd:
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    bindir = workdir / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "powershell"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {SHIM} \"$@\"\n")
    wrapper.chmod(0o755)

    host_key = workdir / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    client_key = paramiko.RSAKey.generate(2048)
    identity = workdir / "id_rsa"
    client_key.write_private_key_file(str(identity))
    authorized = workdir / "authorized_keys"
    authorized.write_text(f"{client_key.get_name()} {client_key.get_base64()} patchgate-test\n")
    authorized.chmod(0o600)

    port = _free_port()
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(host_key.with_suffix('.pub')).read_text().split(' ', 2)[0]} "
                           f"{(host_key.with_suffix('.pub')).read_text().split(' ', 2)[1]}\n")
    user = getpass.getuser()
    path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        f"AllowUsers {user}", f"SetEnv PATH={path} PATCHGATE_SHIM_CONFIG={shim_config}",
        "PrintMotd no", "LogLevel VERBOSE", "",
    ]))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = workdir / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=log.open("wb"))
    try:
        _wait_banner(port, process, log, timeout=15)
    except BaseException:
        process.terminate()
        process.wait(5)
        raise
    return Sshd(port=port, known_hosts=known_hosts, identity_file=identity, user=user, process=process, log=log)


def stop_sshd(sshd: Sshd) -> None:
    sshd.process.terminate()
    try:
        sshd.process.wait(10)
    except subprocess.TimeoutExpired:
        sshd.process.kill()
        sshd.process.wait(5)


def sshd_available() -> bool:
    return Path(SSHD).exists() and shutil.which("ssh-keygen") is not None
