"""The one task waiter: PropertyCollector updates of info.state/error/progress/result, nothing else.

pyVim.task.WaitForTask reads the whole ``info`` object, which fails on tasks whose entity is a snapshot
(govmomi's simulator reports revert/remove-snapshot that way) and gives no timeout or cancellation.
This waiter reads only what it needs, reports progress, honours a deadline, and cancels the vSphere task
(where the task is cancelable) when the run is interrupted or times out, so no orphan task keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pyVmomi import vim, vmodl

from patchgate.errors import HypervisorError, LabTimeout
from patchgate.hypervisors.vsphere.collector import Watch

log = logging.getLogger("patchgate.hypervisors.vsphere")

ProgressCallback = Callable[[int], None]
TASK_PATHS = ("info.state", "info.error", "info.progress", "info.result")
POLL_STEP = 1.0  # seconds between cancel-event checks while the server holds the wait


class TaskCancelled(HypervisorError):
    """The run asked to stop while a vSphere task was running; the task was cancelled where possible."""


def describe_fault(fault: Any) -> str:
    """'FaultType: message' from a LocalizedMethodFault or a MethodFault."""
    if fault is None:
        return "unknown error"
    inner = getattr(fault, "fault", None)
    message = getattr(fault, "localizedMessage", None) or ""
    target = inner if inner is not None else fault
    name = type(target).__name__.split(".")[-1]
    message = message or getattr(target, "msg", "") or ""
    if message and message != name and not message.startswith("*types."):
        return f"{name}: {message}"
    return name


def cancel_task(task: Any, *, vm: str, operation: str) -> bool:
    """Ask vSphere to cancel; False when the task is not cancelable or already finished."""
    try:
        task.CancelTask()
        log.warning("vm %s: cancelled vSphere task %s (%s)", vm, task._moId, operation)
        return True
    except (vmodl.fault.NotSupported, vim.fault.InvalidState, vmodl.fault.NotImplemented) as exc:
        log.warning("vm %s: vSphere task %s (%s) could not be cancelled: %s", vm, task._moId, operation,
                    describe_fault(exc))
        return False
    except Exception as exc:  # never mask the reason we are cancelling
        log.warning("vm %s: cancelling vSphere task %s failed: %s", vm, task._moId, exc)
        return False


class TaskWaiter:
    """Waits for vSphere tasks of one session."""

    def __init__(self, si: vim.ServiceInstance, *, default_timeout: float,
                 cancel_event: threading.Event | None = None) -> None:
        self._si = si
        self.default_timeout = default_timeout
        self.cancel_event = cancel_event or threading.Event()

    def wait(self, task: Any, *, vm: str, operation: str, timeout: float | None = None,
             on_progress: ProgressCallback | None = None) -> Any:
        """Block until the task succeeds (returns info.result) or raise HypervisorError / LabTimeout."""
        limit = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        last_progress: int | None = None
        try:
            with Watch(self._si, task, TASK_PATHS) as watch:
                while True:
                    values = watch.values
                    state = values.get("info.state")
                    progress = values.get("info.progress")
                    if on_progress is not None and progress is not None and progress != last_progress:
                        last_progress = progress
                        on_progress(int(progress))
                    if state == vim.TaskInfo.State.success:
                        if on_progress is not None and last_progress != 100:
                            on_progress(100)
                        return values.get("info.result")
                    if state == vim.TaskInfo.State.error:
                        fault = describe_fault(values.get("info.error"))
                        raise HypervisorError(f"{operation} failed: {fault}",
                                              vm=vm, step=operation)
                    if self.cancel_event.is_set():
                        cancel_task(task, vm=vm, operation=operation)
                        raise TaskCancelled(f"{operation} interrupted; vSphere task {task._moId} cancelled",
                                            vm=vm, step=operation)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        cancelled = cancel_task(task, vm=vm, operation=operation)
                        raise LabTimeout(f"{operation} did not finish within {limit:g}s (vSphere task "
                                         f"{task._moId} {state}; "
                                         f"{'cancelled' if cancelled else 'not cancelable, still running'})",
                                         vm=vm, step=operation)
                    watch.wait(min(remaining, POLL_STEP))
        except KeyboardInterrupt:
            cancel_task(task, vm=vm, operation=operation)
            raise
        except vmodl.MethodFault as exc:
            raise HypervisorError(f"{operation}: waiting for vSphere task {task._moId} failed: "
                                  f"{describe_fault(exc)}", vm=vm, step=operation) from None

    def run(self, start: Callable[[], Any], *, vm: str, operation: str, timeout: float | None = None,
            on_progress: ProgressCallback | None = None) -> Any:
        """Start a task (a vSphere fault at submission becomes HypervisorError too) and wait for it."""
        try:
            task = start()
        except vmodl.MethodFault as exc:
            raise HypervisorError(f"{operation} refused: {describe_fault(exc)}", vm=vm,
                                  step=operation) from None
        return self.wait(task, vm=vm, operation=operation, timeout=timeout, on_progress=on_progress)
