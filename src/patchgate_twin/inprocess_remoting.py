"""Twin-only remoting that calls the twin shell directly. For unit tests; labs use psrp."""

from __future__ import annotations

from pathlib import Path

from patchgate.errors import LabTimeout, RemotingAuthError, RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.base import Script, ScriptResult
from patchgate.secrets.base import Credentials
from patchgate_twin.shell import ScriptHost, Statement, TwinFault


class InProcessSession:
    def __init__(self, shell: ScriptHost, vm: str) -> None:
        self.shell = shell
        self.host = vm
        self.pipelines = 0

    def run(self, script: Script, *, timeout: float | None = None) -> ScriptResult:
        """Run on the twin in a helper thread so the timeout holds as it does over WSMan."""
        import concurrent.futures as cf

        self.pipelines += 1
        statement = Statement(script=script.body, parameters=dict(script.parameters))
        worker = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inprocess-{self.host}")
        future = worker.submit(self.shell.run_pipeline, self.host, [statement], [])
        worker.shutdown(wait=False)
        try:
            out = future.result(timeout=timeout)
        except cf.TimeoutError:
            raise LabTimeout(f"{script.name} did not finish within {timeout:.1f}s", host=self.host) from None
        except TwinFault as fault:
            if fault.kind == "auth-failure":
                raise RemotingAuthError("the host rejected the credentials", host=self.host) from None
            raise RemotingError(f"remoting failed: {fault.kind} ({fault.detail})", host=self.host) from None
        return ScriptResult(name=script.name, output=[str(o) for o in out.output], errors=list(out.errors))

    def copy_file(self, source: Path, destination: str) -> None:
        from patchgate_twin import filecopy

        lab = self.shell.lab  # type: ignore[attr-defined]
        with source.open("rb") as handle:  # by chunks to the VM's disk folder, never whole in memory
            digest = lab.store(self.host).put(iter(lambda: handle.read(1 << 20), b""))
        lab.files(self.host).link(filecopy.key(filecopy.resolve(destination)), digest)

    def close(self) -> None:
        return None


class InProcessRemoting:
    kind = "inprocess"
    cert_validation = True

    def __init__(self, shell: ScriptHost) -> None:
        self.shell = shell

    def prepare(self) -> None:
        """Nothing to load: the shell is in this process."""

    def open(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials) -> InProcessSession:
        return InProcessSession(self.shell, vm_name)


