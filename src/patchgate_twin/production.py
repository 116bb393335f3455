"""A production WSUS server of the twin, for rehearsing ``patchgate promote`` (docs/rings.md, docs/twin.md).

A lab's WSUS server lives for one run and is reverted after it; a production WSUS outlives every run, and its
approvals are the truth `promote` reads back (which ring got a KB, and when). So this host is served on its own:
one twin host with the WSUS role, its computer target groups made at start (production groups are never created
by patchgate), the files WSUS holds of each candidate's update (published from candidate files, with SHA-1 and
SHA-256 as WSUS's UpdateFile.Hash / AdditionalHash), approvals kept for as long as it runs, and a WinRM listener
on 127.0.0.1 that accepts one account. The engine reaches it as it reaches any WSUS: PSRP and the wsus-* ops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from patchgate.config import Lab, load_candidate
from patchgate.secrets.base import Credentials
from patchgate_twin.lab import build_twin_lab
from patchgate_twin.shell_impl import TwinShell
from patchgate_twin.wsman import TwinEndpoints
from patchgate_twin.wsus_model import publish, published_path

DEFAULT_IMAGE = "ws2025-std-wsus-oct2025"  # Microsoft's later metadata: KB5070893 is held and approvable


def published_files(candidate_files: list[Path], *, sha256: bool = True) -> dict[str, list[dict[str, Any]]]:
    """KB -> the files WSUS holds of it, from candidate files (their packages, hashed as WSUS records them).
    ``sha256`` False: WSUS holds no usable SHA-256 (an AdditionalHash that is not 32 bytes), as a check of the
    "unverifiable" path."""
    files: dict[str, list[dict[str, Any]]] = {}
    for path in candidate_files:
        candidate = load_candidate(path)
        for package in candidate.packages:
            data = candidate.package_path(package).read_bytes()
            sha1 = hashlib.sha1(data).hexdigest()  # noqa: S324 - the digest WSUS itself keeps (UpdateFile.Hash)
            files.setdefault(candidate.kb, []).append({
                "Name": Path(package.file).name, "Size": len(data), "Sha1": sha1,
                "Sha256": hashlib.sha256(data).hexdigest() if sha256 else None})
    return files


@dataclass
class ProductionWsus:
    """``start()`` -> the port of its WinRM listener (plain HTTP, Basic, on 127.0.0.1); ``close()`` ends it."""

    username: str
    password: str
    name: str = "wsus-prod-01"
    image: str = DEFAULT_IMAGE
    groups: tuple[str, ...] = ("ring1", "ring2")
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    port: int = 0  # set by start()
    publish: Path | None = None  # serve the VMs of twin labs with this state folder (wsus_model.publish)
    _endpoints: TwinEndpoints | None = None
    _published: Path | None = None

    def start(self) -> int:
        lab = Lab.model_validate({
            "name": f"production-{self.name}", "hypervisor": {"kind": "twin", "settings": {"noise": "quiet"}},
            "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never"}},
            "secrets": {"kind": "env"},
            "vms": [{"name": self.name, "role": "wsus-server", "snapshot": "production", "image": self.image}]})
        twin = build_twin_lab(lab, [], durable=False)
        twin.revert(self.name)
        twin.power_on(self.name)
        twin.wait_ready(self.name, 60)
        shell = TwinShell(twin)
        state = shell.wsus.server(self.name, twin.host(self.name))
        state.groups |= set(self.groups)
        state.files = {kb.upper(): list(entries) for kb, entries in self.files.items()}
        if self.publish is not None:
            folder = self.publish
            shell.wsus.on_change = lambda changed: publish(changed, folder)
            publish(state, folder)
            self._published = published_path(state.host.computer_name, folder)
        account = Credentials(username=self.username, password=SecretStr(self.password))
        self._endpoints = TwinEndpoints(shell, lambda _vm: account)
        self.port = self._endpoints.start(self.name)
        return self.port

    def close(self) -> None:
        if self._endpoints is not None:
            self._endpoints.stop_all()
            self._endpoints = None
        if self._published is not None:
            self._published.unlink(missing_ok=True)
            self._published = None

    def __enter__(self) -> "ProductionWsus":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


USERNAME_VAR, PASSWORD_VAR = "PATCHGATE_PROD_USERNAME", "PATCHGATE_PROD_PASSWORD"  # as labs/rings-twin.example.yaml
EXAMPLE_PORT = "port: 55985"


def cmd_serve(args: Any) -> int:
    """``patchgate twin-wsus``: serve a production WSUS until Ctrl-C, and write the example rings file with its
    port (``--rings-out``), so that ``patchgate promote`` can be tried by hand."""
    import os
    import threading

    from patchgate.config import resolve_candidate
    from patchgate.errors import ConfigError

    username, password = os.environ.get(USERNAME_VAR, ""), os.environ.get(PASSWORD_VAR, "")
    if not username or len(password) < 8:
        raise ConfigError(f"export {USERNAME_VAR} and {PASSWORD_VAR} (8 characters or more): the one account the "
                          "server accepts, the one labs/rings-twin.example.yaml reads", field=USERNAME_VAR)
    candidates = [resolve_candidate(name) for name in args.candidate]
    from patchgate.paths import state_dir

    server = ProductionWsus(username=username, password=password, name=args.name, image=args.image,
                            groups=tuple(args.group), files=published_files(candidates, sha256=not args.no_sha256),
                            publish=state_dir() if args.publish else None)
    port = server.start()
    try:
        for out, example in ((args.rings_out, "rings-twin.example.yaml"),
                             (getattr(args, "lab_out", None), "twin-wsus-external.example.yaml")):
            if out:
                text = (Path(__file__).resolve().parents[2] / "labs" / example).read_text(encoding="utf-8")
                Path(out).write_text(text.replace(EXAMPLE_PORT, f"port: {port}"), encoding="utf-8")
        print(f"production WSUS {args.name} on http://127.0.0.1:{port}/wsman (groups: {', '.join(args.group)}; "
              f"holds {', '.join(sorted(server.files)) or 'no KB'}); Ctrl-C ends it", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
