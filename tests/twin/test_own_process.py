"""The twin served from its own process: the harness drives it across the boundary exactly as in-process.

What must hold: the hosts really answer from another process (their listeners too), lab errors arrive with the
VM and step they name, the twin's log records reach the harness's logging, Ctrl-C meant for the harness does
not take the lab down, and the child never outlives the harness that started it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr
from support.reliability import communicate_or_explain
from support.waiting import wait_until

from patchgate.run.components import LabComponents, build_components
from patchgate.config import Lab
from patchgate.errors import HypervisorError, RemotingAuthError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.run.liveness import process_alive
from patchgate.remoting.psrp_remoting import PsrpRemoting
from patchgate.remoting.staging import OP_STAGE_PREPARE, op_script
from patchgate.secrets.base import Credentials
from patchgate_twin.process import RemoteTwinLab
from patchgate_twin.service import TwinService

ROOT = Path(__file__).resolve().parents[2]


def lab_document(*, own_process: bool = True, faults: list[str] | None = None,
                 snapshot: str = "baseline-2025-10") -> dict:
    return {
        "name": "own-process",
        "hypervisor": {"kind": "twin", "settings": {"own_process": own_process}},
        "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never",
                                                  "read_timeout": 30, "operation_timeout": 20}},
        "secrets": {"kind": "twin"},
        "vms": [{"name": "op-hp-01", "role": "hotpatch-member", "snapshot": snapshot,
                 "image": "ws2025-dc-hotpatch-oct2025", "faults": faults or []}],
        "timeouts": {"ready": 30, "install": 60, "reboot": 30, "capture": 30},
    }


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def build(document: dict) -> LabComponents:
    return build_components(Lab.model_validate(document), kind_catalogs=[], stop=threading.Event())


def wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    return wait_until(lambda: not process_alive(pid), f"process {pid} to end", timeout=timeout)


def test_psrp_twin_labs_are_served_from_another_process_and_answer_wsman(state: Path) -> None:
    components = build(lab_document())
    try:
        assert isinstance(components.handle.lab, RemoteTwinLab)
        child = components.handle.lab.process.pid
        assert child != os.getpid() and process_alive(child)
        lab = components.handle.lab.lab
        vm = lab.vms[0]
        hypervisor = components.hypervisor
        snapshot = hypervisor.revert(vm)
        assert snapshot.identifier == "twin:op-hp-01/baseline-2025-10@ws2025-dc-hotpatch-oct2025"
        hypervisor.power_on(vm)
        endpoint = hypervisor.wait_ready(vm, 30)
        credentials = components.secrets.remoting_credentials(vm)
        session = PsrpRemoting(lab.remoting.settings).open(vm.name, endpoint, credentials)
        try:
            result = session.run(op_script(OP_STAGE_PREPARE, Path="C:\\staging"), timeout=30)
        finally:
            session.close()
        assert result.output, result.errors
        counters = components.handle.endpoints.counters(vm.name)
        assert counters.get("pipelines", 0) >= 1  # counted by the listener in the child
    finally:
        components.close()
    assert wait_until_gone(child), "the twin's process outlived close()"
    assert (state / "twin" / "own-process" / "op-hp-01.pickle").is_file()  # its disk was written


def test_a_wrong_password_is_refused_by_the_child_listener(state: Path) -> None:
    components = build(lab_document())
    try:
        vm = components.handle.lab.lab.vms[0]
        components.hypervisor.revert(vm)
        components.hypervisor.power_on(vm)
        endpoint = components.hypervisor.wait_ready(vm, 30)
        good = components.secrets.remoting_credentials(vm)
        wrong = Credentials(username=good.username, password=SecretStr("not-the-password"))
        with pytest.raises(RemotingAuthError):
            PsrpRemoting(components.handle.lab.lab.remoting.settings).open(vm.name, endpoint, wrong)
        assert components.handle.endpoints.counters(vm.name)["auth_failures"] >= 1
    finally:
        components.close()


def test_lab_errors_cross_the_boundary_with_vm_and_step(state: Path) -> None:
    components = build(lab_document(faults=["revert-fails:always"]))
    try:
        vm = components.handle.lab.lab.vms[0]
        with pytest.raises(HypervisorError) as caught:
            components.hypervisor.revert(vm)
        assert caught.value.vm == "op-hp-01" and caught.value.step == "revert"
        assert "revert-fails" in str(caught.value)
    finally:
        components.close()


def test_the_twins_log_records_reach_the_harness(state: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = state / "twin" / "own-process"
    folder.mkdir(parents=True)
    (folder / "op-hp-01.pickle").write_bytes(b"not a disk")  # the child warns and starts from the image
    caplog.set_level(logging.WARNING)
    components = build(lab_document())
    components.close()  # the relay has passed on every record once close returns
    warnings = [r for r in caplog.records if r.name == "patchgate_twin.lab"]
    assert any("unreadable" in r.getMessage() for r in warnings), caplog.text


def test_relayed_records_are_masked_with_the_harness_secrets(state: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A secret the harness learns after the fork (a Vault read mid-run) is unknown to the child's redactor; the
    relay masks the child's records with the harness's before any handler sees them."""
    import uuid

    from patchgate.secrets.redact import MASK, redactor

    marker = f"pgsecret{uuid.uuid4().hex}"  # unique: the redactor is process-wide
    caplog.set_level(logging.DEBUG, logger="patchgate_twin.lab")
    components = build(lab_document(snapshot=marker))
    try:
        redactor.register(marker)  # after the fork
        vm = components.handle.lab.lab.vms[0]
        components.hypervisor.revert(vm)  # the child logs "twin op-hp-01 reverted to <snapshot>"
    finally:
        components.close()
    reverted = [r.getMessage() for r in caplog.records if "reverted to" in r.getMessage()]
    assert reverted, caplog.text
    assert all(marker not in message and MASK in message for message in reverted), reverted


def test_ctrl_c_meant_for_the_harness_does_not_stop_the_twin(state: Path) -> None:
    components = build(lab_document())
    try:
        child = components.handle.lab.process.pid
        os.kill(child, signal.SIGINT)
        os.kill(child, signal.SIGTERM)
        vm = components.handle.lab.lab.vms[0]
        components.hypervisor.revert(vm)  # still answering: the harness restores the VMs through it
        assert process_alive(child)
    finally:
        components.close()


def test_the_twin_exits_when_the_harness_is_killed(state: Path, tmp_path: Path) -> None:
    script = tmp_path / "harness.py"
    script.write_text(
        "import sys, threading\n"
        "from patchgate.run.components import build_components\n"
        "from patchgate.config import Lab\n"
        f"document = {lab_document()!r}\n"
        "c = build_components(Lab.model_validate(document), kind_catalogs=[], stop=threading.Event())\n"
        "print(c.handle.lab.process.pid, flush=True)\n"
        "sys.stdin.read()\n", encoding="utf-8")
    harness = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=os.environ.copy())
    try:
        child = int(harness.stdout.readline())
        assert process_alive(child)
        harness.kill()
        harness.wait(timeout=10)
        assert wait_until_gone(child), "the twin's process outlived a killed harness"
    finally:
        if harness.poll() is None:
            harness.kill()


# The harness's own rule (patchgate.run.interrupts.interrupted): once the stop signal was taken, whatever the start
# raised is the interrupt (pydantic-core, for one, reports a KeyboardInterrupt inside a model build as SchemaError).
HARNESS_INTERRUPTED_AT = """\
import signal, sys, threading, time
from patchgate.run.components import build_components
from patchgate.run.interrupts import StopOnce, interrupted
from patchgate.config import Lab
document = {document!r}
after = float(sys.argv[1])
signal.signal(signal.SIGALRM, StopOnce())
if after:
    signal.setitimer(signal.ITIMER_REAL, after)
started = time.perf_counter()
try:
    c = build_components(Lab.model_validate(document), kind_catalogs=[], stop=threading.Event())
    signal.setitimer(signal.ITIMER_REAL, 0)
    print("started", time.perf_counter() - started, flush=True)
    c.close()
except BaseException as exc:
    if not interrupted(exc):
        raise
    print("interrupted", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_while_the_twins_process_starts_never_hangs_the_harness(state: Path, tmp_path: Path) -> None:
    """An interrupt that lands while the harness waits for the forked child's address: the harness ends (it
    used to wait forever for a child that itself waited for the harness to die). A timer stands in for the
    terminal; its delays walk across the whole start in steps of a few milliseconds, which is the point of
    this test (the window is a few milliseconds wide)."""
    script = tmp_path / "harness.py"
    script.write_text(HARNESS_INTERRUPTED_AT.format(document=lab_document()), encoding="utf-8")

    def harness(after: float) -> tuple[int, str]:
        """Exit code and output; a harness still running after 90 s (a hang; a busy machine is slow) fails the
        test with the stacks of every thread of the harness and of the twin's process."""
        proc = subprocess.Popen([sys.executable, str(script), str(after)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONFAULTHANDLER": "1"})
        try:
            output = communicate_or_explain(proc, 90)
        except AssertionError as hang:
            raise AssertionError(f"interrupted at +{after * 1000:.0f} ms: {hang}") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode, output

    code, output = harness(0)
    assert code == 0 and output.startswith("started"), output
    start_time = float(output.split()[1])
    problems = []
    for step in range(1, 41):
        after = start_time * 1.3 * step / 40
        code, output = harness(after)
        # -SIGINT: CPython ends by SIGINT when the interrupt landed in exec()'d code (a dataclass being made),
        # caught or not; what matters is that the harness ended and reached its own handler
        if code not in (0, -signal.SIGINT) or not output.strip():
            problems.append(f"interrupted at +{after * 1000:.0f} ms: exit {code}\n{output[-1500:]}")
    assert not problems, "\n".join(problems)


def test_a_twin_process_that_does_not_answer_never_holds_up_close(state: Path) -> None:
    """Ctrl-C while the harness waits for the child's lab: close() ends the child itself, never leaving it to a
    shutdown request the child may not answer (stopped here; busy building a big lab on a loaded machine), which
    would leave the harness's exit waiting for it."""
    from patchgate_twin.process import TwinProcess

    process = TwinProcess(Lab.model_validate(lab_document()), None)
    child = process.child_pid
    os.kill(child, signal.SIGSTOP)
    closing = threading.Thread(target=process.close, daemon=True)
    closing.start()
    closing.join(timeout=30)  # a bound for the failure only: a hang never ends
    if closing.is_alive():
        os.kill(child, signal.SIGKILL)
    assert not closing.is_alive(), "close() waited for a child that does not answer"
    assert not process_alive(child)


def test_the_harness_exit_ends_a_twin_process_nobody_closed(state: Path, tmp_path: Path) -> None:
    """An interrupt can find the window where the child is forked and nothing holds it yet: the harness's exit
    still ends it, at once, instead of multiprocessing joining a child that waits for its parent to die."""
    script = tmp_path / "harness.py"
    script.write_text(
        "import sys\n"
        "from patchgate.config import Lab\n"
        "from patchgate_twin.process import TwinProcess\n"
        f"document = {lab_document()!r}\n"
        "import os, signal\n"
        "process = TwinProcess(Lab.model_validate(document), None)\n"
        "print(process.child_pid, flush=True)\n"
        "os.kill(process.child_pid, signal.SIGSTOP)  # a child that answers nothing\n",
        encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        output = communicate_or_explain(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert wait_until_gone(int(output.split()[0]), timeout=5), "the twin's process outlived the harness"


def test_own_process_false_keeps_the_twin_in_the_harness(state: Path) -> None:
    components = build(lab_document(own_process=False))
    try:
        assert not isinstance(components.handle.lab, RemoteTwinLab)
        assert components.handle.shell is not None
    finally:
        components.close()


def test_the_service_is_what_the_child_runs(state: Path) -> None:
    """The service object itself, in this process: revert drops the guest's shells as a restart would."""
    from patchgate_twin.lab import check_twin_inputs

    lab = Lab.model_validate(lab_document())
    service = TwinService(lab, check_twin_inputs(lab, []))
    try:
        service.revert("op-hp-01")
        service.power_on("op-hp-01")
        port = service.start_endpoint("op-hp-01", "patchgate", "twin-service-pass-1")
        credentials = Credentials(username="patchgate", password=SecretStr("twin-service-pass-1"))
        session = PsrpRemoting(lab.remoting.settings).open("op-hp-01", GuestEndpoint("127.0.0.1", port),
                                                            credentials)
        try:
            assert session.run(op_script(OP_STAGE_PREPARE, Path="C:\\staging"), timeout=30).output
            assert service.counters("op-hp-01").get("pipelines", 0) >= 1
            service.revert("op-hp-01")  # the guest forgets the shell: the session reconnects once
            service.power_on("op-hp-01")
            assert session.run(op_script(OP_STAGE_PREPARE, Path="C:\\staging"), timeout=30).output
            assert session.reconnects == 1
        finally:
            session.close()
    finally:
        service.close()


def test_a_twin_process_that_dies_is_lab_trouble(state: Path) -> None:
    components = build(lab_document())
    try:
        child = components.handle.lab.process.pid
        os.kill(child, signal.SIGKILL)
        assert wait_until_gone(child)
        vm = components.handle.lab.lab.vms[0]
        with pytest.raises(HypervisorError, match="twin's process is gone") as caught:
            components.hypervisor.revert(vm)
        assert caught.value.vm == "op-hp-01"
    finally:
        components.close()


def test_inputs_checked_already_are_loaded_by_the_child_and_its_failure_is_lab_trouble(state: Path,
                                                                                     tmp_path: Path) -> None:
    lab = Lab.model_validate(lab_document())
    components = build_components(lab, kind_catalogs=[], stop=threading.Event(), kind_inputs_checked=True)
    try:  # the child loaded the catalogue and images itself and serves the VM
        assert components.handle.lab.process.pid != os.getpid()
        assert components.hypervisor.revert(lab.vms[0]).identifier.startswith("twin:op-hp-01/")
    finally:
        components.close()
    broken = tmp_path / "broken-catalog"
    broken.mkdir()
    (broken / "bad.yaml").write_text("behaviours: [ {kb: KB1} ]\n")  # no title, no effects: not a behaviour
    with pytest.raises(HypervisorError, match="could not open lab 'own-process'"):
        build_components(lab, kind_catalogs=[broken], stop=threading.Event(), kind_inputs_checked=True)
