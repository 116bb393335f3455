"""Start and drive govmomi's vCenter simulator (tools/vcsim) for rehearsal labs and tests.

The simulator serves the real vSphere SOAP API on 127.0.0.1 with a fresh certificate per start. Its
differences from vCenter are documented in docs/vsphere.md; the control calls here (held tasks,
questions, guest info) exist because the simulator cannot produce those states by itself.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from patchgate.errors import HypervisorError
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

REPO_TOOLS = Path(__file__).resolve().parents[4] / "tools" / "vcsim"
START_TIMEOUT = 30.0


def build(tools_dir: Path = REPO_TOOLS, timeout: float = 600.0) -> Path:
    """Run tools/vcsim/build.sh (a no-op when the binary is current) and return the binary's path."""
    script = tools_dir / "build.sh"
    if not script.is_file():
        raise HypervisorError(f"simulator build script {script} not found", step="simulator")
    proc = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise HypervisorError(f"building the vSphere simulator failed (exit {proc.returncode}): "
                              f"{proc.stderr.strip()[-2000:]}", step="simulator")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class Vcsim:
    """One running simulator process; stop() (or the context manager) ends it by its pid."""

    binary: Path
    username: str = "patchgate"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    workdir: Path | None = None
    url: str = ""
    thumbprint: str = ""
    cert_path: Path | None = None
    process: subprocess.Popen[str] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.username, SecretStr(self.password))

    def start(self) -> Vcsim:
        redactor.register(self.password)
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="patchgate-vcsim-")
            self.workdir = Path(self._tmp.name)
        self.cert_path = self.workdir / "vcsim-cert.pem"
        self._log = open(self.workdir / "vcsim.log", "w", encoding="utf-8")  # noqa: SIM115 (lives with the process)
        env = dict(os.environ, VCSIM_USERNAME=self.username, VCSIM_PASSWORD=self.password)
        self.process = subprocess.Popen([str(self.binary), "-port", "0", "-cert-out", str(self.cert_path)],
                                        stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process.stdout is not None
        while True:
            remaining = deadline - time.monotonic()
            if self.process.poll() is not None:
                raise HypervisorError(f"the vSphere simulator exited with {self.process.returncode} at "
                                      "start; "
                                      f"see {self.workdir / 'vcsim.log'}", step="simulator")
            if remaining <= 0:
                self.stop()
                raise HypervisorError(f"the vSphere simulator did not report ready within {START_TIMEOUT:g}s",
                                      step="simulator")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith("{"):
                    info = json.loads(line)
                    self.url, self.thumbprint = info["url"], info["thumbprint"]
                    return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Vcsim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ control API (see tools/vcsim/main.go)

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        base = self.url.rsplit("/sdk", 1)[0]
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{base}/_patchgate/{action}?{query}", method="POST", data=b"")
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=str(self.cert_path))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise HypervisorError(f"simulator control {action} failed: {exc.read().decode(errors='replace')}",
                                  step="simulator") from None

    def hold_task(self, vm: str, *, cancelable: bool = True, progress: int | None = None) -> str:
        """A task that stays running on the VM (listed in its recentTask) until released or cancelled."""
        answer = self.control("hold", vm=vm, cancelable="1" if cancelable else "0", progress=progress)
        return str(answer["task"])

    def task_progress(self, task: str, progress: int) -> None:
        self.control("progress", task=task, progress=progress)

    def release_task(self, task: str, *, fault: bool = False) -> str:
        return str(self.control("release", task=task, fault="1" if fault else None)["state"])

    def ask_question(self, vm: str, text: str | None = None) -> None:
        self.control("question", vm=vm, text=text)

    def clear_question(self, vm: str) -> None:
        self.control("question", vm=vm, clear="1")


def guest_config(*, ip: str | None = None, hostname: str | None = None, tools: str | None = None,
                 state: str | None = None, heartbeat: str | None = None) -> list[tuple[str, str]]:
    """extraConfig pairs that make the simulator report guest info as VMware Tools would."""
    pairs = [("SET.guest.ipAddress", ip), ("SET.guest.hostName", hostname),
             ("SET.guest.toolsRunningStatus", tools), ("SET.guest.guestState", state),
             ("SET.guestHeartbeatStatus", heartbeat),
             ("SET.summary.quickStats.guestHeartbeatStatus", heartbeat)]
    return [(k, v) for k, v in pairs if v is not None]


def set_guest(hypervisor: Any, ref: Any, vm_name: str, **values: str | None) -> None:
    """Apply ``guest_config(**values)`` to a simulator VM through ReconfigVM_Task."""
    from pyVmomi import vim

    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=k, value=v)
                                          for k, v in guest_config(**values)])
    hypervisor.waiter.run(lambda: ref.ReconfigVM_Task(spec), vm=vm_name, operation="guest-info")
