"""The twin lab served from its own process, and the harness's handles on it.

Why: with the twin inside the harness, every WSMan request costs the harness's interpreter lock twice (pypsrp
building the request, psrpcore answering it), so with many VMs the lifecycles stretch with the VM count. A real
lab answers from other machines; so does the twin here: one child process per run holds the twin's hosts, their
disks and their WinRM listeners, and the harness talks to it the way it talks to a hypervisor (a call per
operation, over a ``multiprocessing`` manager) and to the hosts (WSMan over TCP, unchanged).

Lifetime: the run forks the child when it builds its components (the twin's lab kind, patchgate_twin.kind). It ends when the run has
closed it (its disks written). Forked, not spawned: it inherits the loaded lab and modules and serves within a
fraction of a second (it loads what it lacks itself, on its own core); it uses only its own objects, gets fresh
stdio and log handlers, and never returns into the code of the process it was forked from. It ignores Ctrl-C
and SIGTERM (the harness restores the VMs through it first), and it exits at once when the process that started
it dies: a killed run leaves the twin's disks as a killed in-process twin would (marked changed), for
``patchgate reap``.
Its log records are relayed to the harness's logging.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from multiprocessing.managers import BaseManager, RemoteError
from typing import TYPE_CHECKING, Any, Callable

from patchgate.config.lab import Lab
from patchgate.errors import HypervisorError, LabError
from patchgate.remoting.logging_hygiene import quiet_transport_loggers
from patchgate.run.interrupts import import_held
from patchgate.secrets.base import credential_pair
from patchgate.secrets.redact import RedactingFilter
from patchgate_twin.faults import parse_faults
from patchgate_twin.lab import snapshot_identifier
from patchgate_twin.lease_fault import LeaseHeldFault

if TYPE_CHECKING:
    from patchgate_twin.catalog import Catalog
    from patchgate_twin.service import TwinService

log = logging.getLogger(__name__)

SERVICE_METHODS = ("ensure_snapshot", "revert", "power_on", "power_state", "wait_ready", "reboot",
                   "keep_snapshot", "start_endpoint", "counters", "reset_counters", "stop_endpoints", "pid", "stop", "close")


class _TwinManager(BaseManager):
    """The child's server: one registered object, the twin service built when the child starts."""


_SERVICE: "TwinService | None" = None
_SERVICE_ERROR: BaseException | None = None
_BUILT = threading.Event()  # set in the child once the service (or its error) exists


BUILD_TIMEOUT_S = 120.0
"""How long the harness waits for the child to build its lab (a second or two; the catalogue and the disks of a
big lab take longer): a child that never finishes (say, an import lock another thread of the harness held when it
forked) is then a clear error, lab trouble for the run, never a run that waits forever."""


def _service() -> "TwinService":
    if not _BUILT.wait(BUILD_TIMEOUT_S):
        raise RuntimeError(f"the twin's process did not build its lab within {BUILD_TIMEOUT_S:g}s")
    if _SERVICE is None:
        raise _SERVICE_ERROR or RuntimeError("no twin lab was built")
    return _SERVICE


_TwinManager.register("service", callable=_service, exposed=SERVICE_METHODS)


class _RecordPipe:
    """The child's end of the records pipe. Its lock lives in the child only: a lock shared with the harness (a
    multiprocessing queue's) stays held for good when the child is killed in the middle of a write, and the
    harness's next write on that queue would wait forever."""

    def __init__(self, writer: multiprocessing.connection.Connection) -> None:
        self._writer = writer
        self._lock = threading.Lock()

    def put(self, record: logging.LogRecord) -> None:
        with self._lock:
            self._writer.send(record)


class _QueueHandler(logging.handlers.QueueHandler):
    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(record)  # written through the pipe at once


def _start_in_child(lab: Lab, catalog: "Catalog | None", records: multiprocessing.connection.Connection,
                    twin_catalogs: list[str]) -> None:
    """Initializer of the forked child: arguments are inherited, not pickled. The service is built on a thread
    of its own, so the manager answers at once and the harness goes on starting while the child loads the
    catalogue (when the harness did not) and builds the lab; asking for the service waits for it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the manager already ignores SIGINT
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # never write into the harness's stdout (under xdist it is the worker's channel)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the child's lifetime
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115 - a fresh lock, none inherited held
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_QueueHandler(_RecordPipe(records)))
    quiet_transport_loggers()  # psrpcore's records of the messages it reads never leave the child either

    parent = multiprocessing.parent_process()
    if parent is not None:
        def exit_with_parent() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(0)  # unsaved changes die with the run, exactly as an in-process twin's would

        threading.Thread(target=exit_with_parent, name="twin-parent-watch", daemon=True).start()
    threading.Thread(target=_build_service, args=(lab, catalog, twin_catalogs), name="twin-build",
                     daemon=True).start()


def _build_service(lab: Lab, catalog: "Catalog | None", twin_catalogs: list[str]) -> None:
    global _SERVICE, _SERVICE_ERROR
    try:
        from pathlib import Path

        from patchgate_twin.lab import check_twin_inputs
        from patchgate_twin.service import TwinService

        if catalog is None:
            catalog = check_twin_inputs(lab, [Path(folder) for folder in twin_catalogs])
        _SERVICE = TwinService(lab, catalog)
    except BaseException as exc:  # noqa: BLE001 - reported to the harness when it asks for the service
        _SERVICE_ERROR = exc
    finally:
        _BUILT.set()


def _relay_records(records: multiprocessing.connection.Connection) -> None:
    """The child's records, masked with the harness's secrets (the child's redactor knows only those registered
    before it was forked), then handled as if logged here. Ends when the child has ended: the pipe is then at
    its end, after the last record the child wrote."""
    masking = RedactingFilter()
    while True:
        try:
            record = records.recv()
        except (EOFError, OSError):
            return
        masking.filter(record)
        logging.getLogger(record.name).handle(record)


class TwinProcess:
    """A handle on the twin's process: start, the service proxy, and a clean end.

    ``catalog`` None: the child loads the lab's twin catalogue and images itself (``twin_catalogs`` are the extra
    folders), for inputs someone checked already (``patchgate validate`` does before the suites start).
    ``ready()`` waits for the child's service and raises what it met."""

    def __init__(self, lab: Lab, catalog: "Catalog | None", *, twin_catalogs: list[str] | None = None) -> None:
        if catalog is not None:  # the child then finds it imported (it loads fast)
            import_held("patchgate_twin.service")

        self._init_handle(lab.name)
        context = multiprocessing.get_context("fork")
        records, self._records_writer = context.Pipe(duplex=False)
        self._start_relay(records)
        self.authkey = os.urandom(32)
        self._manager = _TwinManager(authkey=self.authkey, ctx=context)
        # From the fork on, this process's exit kills the child: whatever window an interrupt finds (the child
        # forked, nobody holding it yet), the child never waits for this process to die while this process's
        # exit waits for its children (multiprocessing joins them): that would be a hang, not an interrupt.
        atexit.register(self._kill_child)
        try:
            self._manager.start(initializer=_start_in_child,
                                initargs=(lab, catalog, self._records_writer,
                                          [str(f) for f in twin_catalogs or []]))
        except BaseException as exc:
            self._records_writer.close()
            self.discard()
            if isinstance(exc, Exception):
                raise HypervisorError(f"the twin's process did not start: {exc}") from None
            raise
        self._records_writer.close()  # the child holds the writing end now: its end is the records' end
        self.address = str(self._manager.address)

    def _init_handle(self, lab_name: str) -> None:
        self._lab_name = lab_name
        self._owner_pid = os.getpid()  # a process forked from this one inherits the exit hook, not the child
        self._service: Any = None
        self._service_lock = threading.Lock()
        self._closed = threading.Event()
        self._relay: threading.Thread | None = None
        self._stop_relay: threading.Thread | None = None
        self.pid: int | None = None

    def _start_relay(self, records: multiprocessing.connection.Connection) -> None:
        self._relay = threading.Thread(target=_relay_records, args=(records,), name="twin-log-relay", daemon=True)
        self._relay.start()

    def ready(self) -> "TwinProcess":
        """Wait until the child has built its lab; a child that could not is a HypervisorError (and ended)."""
        with self._service_lock:
            if self._service is not None:
                return self
            try:
                self._service = self._manager.service()  # type: ignore[attr-defined]
                self.pid = self._service.pid()
            except RemoteError as exc:  # the child could not build the lab: its last traceback line
                self.discard()
                lines = str(exc).strip().splitlines()
                raise HypervisorError(f"the twin's process could not open lab '{self._lab_name}': "
                                      f"{lines[-1] if lines else exc}") from None
            except Exception as exc:
                self.discard()
                raise HypervisorError(f"the twin's process did not start: {exc}") from None
        return self

    def stop_with(self, stop: threading.Event) -> None:
        """The run's stop reaches the waits inside the twin (a hung install ends, a boot wait gives up)."""
        self._stop_relay = threading.Thread(target=self._relay_stop, args=(stop,), name="twin-stop-relay",
                                            daemon=True)
        self._stop_relay.start()

    @property
    def service(self) -> Any:
        return self.ready()._service

    def _relay_stop(self, stop: threading.Event) -> None:
        while not self._closed.is_set():
            if stop.wait(0.25):
                if not self._closed.is_set():
                    try:
                        self.service.stop()
                    except Exception:  # noqa: BLE001 - the child is gone already: nothing waits in it
                        pass
                return

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop the listeners, write the disks, end the child. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._service is not None:
            try:
                self._service.close()
            except Exception as exc:  # noqa: BLE001 - the child may be gone; its disks say what they say
                log.warning("the twin's process did not close cleanly: %s", exc)
        self._kill_child()  # its disks are written (or it never built them): nothing in it is left to save
        self._end()

    @property
    def child_pid(self) -> int | None:
        """The child's pid once it is forked (``pid`` is the one the ready service reports)."""
        child = getattr(self._manager, "_process", None)  # multiprocessing's Process of the child
        return child.pid if child is not None else None

    def _kill_child(self) -> None:
        """An orderly exit would first free the whole lab (every host of every VM), for nothing; and a child
        asked to shut down while it still builds its lab (or stopped, or starved of CPU) may not answer."""
        pid = self.child_pid
        if pid is None or os.getpid() != self._owner_pid:
            return
        try:
            os.kill(pid, signal.SIGKILL)  # even before multiprocessing holds its child (Ctrl-C in its start)
        except ProcessLookupError:
            return
        child = self._manager._process  # type: ignore[attr-defined]
        if child.is_alive():
            child.join(timeout=5)

    def discard(self) -> None:
        """End the child without writing its disks: what nobody closed dies with the run, as it does when the
        harness is killed (the disks stay marked changed, for ``patchgate reap``). Idempotent."""
        self._closed.set()
        self._kill_child()
        self._end()

    def _end(self) -> None:
        try:
            self._manager.shutdown()
        except Exception:  # noqa: BLE001 - never started
            pass
        atexit.unregister(self._kill_child)
        # Both threads end now (the child is gone, the handle closed), and are waited for: a daemon thread that
        # wakes while the interpreter finalizes can abort the process ("FATAL: exception not rethrown").
        if self._relay is not None:
            self._relay.join(timeout=5)  # the child is gone: the relay has the last records, then the pipe's end
        if self._stop_relay is not None and self._stop_relay is not threading.current_thread():
            self._stop_relay.join(timeout=5)  # it sees the handle closed within its 0.25 s wait


class RemoteTwinLab:
    """The TwinLab calls the harness makes, answered by the twin's process. Faults named in the lab file are
    known here without asking; the ones behaviours raise during a run (a guest that never returns) act in the
    child, where the waits happen."""

    def __init__(self, lab: Lab, process: TwinProcess) -> None:
        self.lab = lab
        self.process = process
        where = str(lab.source) if lab.source else None
        self._faults = {vm.name: parse_faults(vm.faults, where=where) for vm in [*lab.vms, *lab.control_vms]}
        self.lease_fault = LeaseHeldFault(self._faults)

    def has_fault(self, name: str, kind: str) -> bool:
        return kind in self._faults.get(name, {})

    def hold_leases(self, manager: object, vm_names: list[str]) -> None:
        self.lease_fault.hold(manager, vm_names)

    def snapshot_identifier(self, name: str) -> str:
        return snapshot_identifier(self.lab.vm(name))

    def _call(self, operation: str, name: str, *args: Any) -> Any:
        try:
            return getattr(self.process.service, operation)(name, *args)
        except (EOFError, OSError) as exc:  # the child died under us: lab trouble, never a verdict
            raise HypervisorError(f"the twin's process is gone ({exc.__class__.__name__}) during {operation}",
                                  vm=name) from None

    def ensure_snapshot(self, name: str) -> None:
        self._call("ensure_snapshot", name)

    def revert(self, name: str) -> None:
        self._call("revert", name)

    def power_on(self, name: str) -> None:
        self._call("power_on", name)

    def power_state(self, name: str) -> str:
        return str(self._call("power_state", name))

    def wait_ready(self, name: str, timeout: float) -> None:
        self._call("wait_ready", name, timeout)

    def reboot(self, name: str) -> None:
        self._call("reboot", name)

    def keep_snapshot(self, name: str, snapshot: str) -> None:
        self._call("keep_snapshot", name, snapshot)

    def close(self) -> None:
        self.process.close()
        self.lease_fault.release()


class RemoteEndpoints:
    """TwinEndpoints' face for the harness: each VM's listener runs in the twin's process, which also drops a
    VM's shells when it reverts or restarts the guest. The account a
    listener accepts is sent when it starts (at every readiness wait), from the lab's secrets at that moment
    (in the harness's process a listener asks at every login instead; a rotation shows at the next boot here)."""

    def __init__(self, process: TwinProcess, credentials_for_vm: Callable[[str], Any]) -> None:
        self._process = process
        self._credentials_for_vm = credentials_for_vm

    def start(self, vm: str) -> int:
        try:
            username, password = credential_pair(self._credentials_for_vm(vm))
        except LabError as exc:  # Vault trouble: the lifecycle's own read at connect reports it, as it would
            log.debug("twin host %s keeps the account it had: %s", vm, exc)
            username = password = None
        return int(self._process.service.start_endpoint(vm, username, password))

    def counters(self, vm: str) -> dict[str, int]:
        return dict(self._process.service.counters(vm))

    def reset_counters(self, vm: str) -> None:
        self._process.service.reset_counters(vm)

    def stop_all(self) -> None:
        if not self._process.closed:
            self._process.service.stop_endpoints()
