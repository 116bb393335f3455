"""One twin host's WinRM endpoint: the WSMan actions (shells, commands, send, receive, signal) and the PSRP
runspace pool behind them, through psrpcore's server classes. The HTTP side is patchgate_twin.wsman.transport.

Each VM gets its own endpoint on its own ephemeral port, exactly as each Windows host has its own listener,
so request counters are per VM and a fault injected into one host never disturbs another. The endpoint runs
no PowerShell: it turns each PSRP pipeline into ``Statement``s, hands them to the twin's ``ScriptHost`` and
serialises what comes back. Pipelines run on their own thread, so ``Receive`` long-polls for as long as the
client's ``OperationTimeout`` allows and then answers the WSMan timeout fault, as WinRM does.
"""

from __future__ import annotations

import base64
import binascii
import collections
import logging
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    PipelineInputEvent,
    PSRPPayload,
    ServerPipeline,
    ServerRunspacePool,
    StreamType,
)
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    NETException,
    PSInvocationState,
)

from patchgate_twin.shell import PipelineOutput, ScriptHost, Statement, TwinFault
from patchgate_twin.wsman import soap
from patchgate_twin.wsman.transport import BASIC_CHALLENGE, CredentialSource, Drop, Hang, HttpListener, Reply
from patchgate_twin.wsman.values import to_python, to_wire

log = logging.getLogger(__name__)

MAX_LONG_POLL = 600.0  # never hold a Receive longer than this, whatever the client asks
DEFAULT_IDLE_TIMEOUT = 7200.0  # WinRM's default shell IdleTimeout (2 hours)
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"


@dataclass
class _Pipeline:
    pid: uuid.UUID
    command_id: str
    pipe: ServerPipeline
    statements: list[Statement] | None = None
    inputs: Any = field(default_factory=list)  # a list, or what the script host's open_input gave (an upload)
    input_done: bool = False
    no_input: bool = True
    started: bool = False
    finished: bool = False
    fault: TwinFault | None = None


@dataclass
class _Shell:
    shell_id: str
    resource_uri: str
    owner: str
    idle_timeout: float
    input_streams: str
    output_streams: str
    pool: ServerRunspacePool
    chunk: int
    last_activity: float = field(default_factory=time.monotonic)
    queues: dict[uuid.UUID | None, collections.deque[bytes]] = field(default_factory=dict)
    pipelines: dict[uuid.UUID, _Pipeline] = field(default_factory=dict)


class WSManEndpoint:
    """The WinRM listener of one twin VM. ``start()`` returns the port; ``stop()`` ends every request."""

    def __init__(self, vm: str, script_host: ScriptHost, credentials: CredentialSource, *,
                 latency: float = 0.0, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None, path: str = "wsman") -> None:
        self.vm = vm
        self.script_host = script_host
        self._credentials = credentials
        self.idle_timeout = idle_timeout
        self.path = path
        self.stopping = threading.Event()
        self._cond = threading.Condition()
        self._shells: dict[str, _Shell] = {}
        self._counters: collections.Counter[str] = collections.Counter()
        self._listener = HttpListener(self, credentials, stopping=self.stopping, latency=latency,
                                      ssl_context=ssl_context)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        if not self._listener.running:
            self.stopping.clear()
        return self._listener.start()

    def stop(self) -> None:
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._listener.stop()

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def url(self) -> str:
        return f"{self._listener.scheme}://127.0.0.1:{self.port}/{self.path}"

    def counters(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counters)

    def reset_counters(self) -> None:
        with self._cond:
            self._counters.clear()

    def count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self._counters[key] += n

    def drop_shells(self) -> int:
        """Forget every shell, as a WinRM service restart or an idle timeout would. Returns how many."""
        with self._cond:
            dropped = len(self._shells)
            self._shells.clear()
            self._cond.notify_all()
            return dropped

    def expire_idle_shells(self) -> int:
        """Drop shells past their idle timeout now (otherwise done lazily); returns how many remain."""
        with self._cond:
            self._sweep()
            return len(self._shells)

    # ------------------------------------------------------------------ dispatch

    def handle(self, data: bytes) -> tuple[int, bytes]:
        """One WSMan request."""
        try:
            request = soap.parse_request(data)
        except soap.BadRequest as exc:
            self.count("faults")
            return 500, soap.fault("", exc.code, str(exc), self.vm, exc.subcode, receiver=False)
        self.count(request.action)
        refuses = getattr(self.script_host, "refuses_remoting", None)
        if refuses is not None and refuses(self.vm):  # the guest's WinRM is stopped or firewalled off
            self.count("refused")
            raise Drop()
        return self._dispatch(request)

    def _dispatch(self, request: soap.Request) -> tuple[int, bytes]:
        try:
            body = getattr(self, f"_do_{request.action.lower()}")(request)
            return 200, soap.envelope(request.action_uri + "Response", request.message_id, body)
        except soap.BadRequest as exc:
            self.count("faults")
            return 500, soap.fault(request.message_id, exc.code, str(exc), self.vm, exc.subcode)
        except (Reply, Hang, Drop):
            raise
        except Exception as exc:  # a twin bug must look like a host-side fault, not kill the listener
            log.exception("wsman %s: %s failed", self.vm, request.action)
            self.count("faults")
            return 500, soap.fault(request.message_id, soap.ERROR_WSMAN_INVALID_REQUEST,
                                   f"the twin could not process {request.action}: {type(exc).__name__}: {exc}",
                                   self.vm)

    def _sweep(self) -> None:
        """Forget shells past their idle timeout (clients that vanished without Delete). Lock held."""
        now = time.monotonic()
        for shell_id in [k for k, v in self._shells.items() if now - v.last_activity > v.idle_timeout]:
            del self._shells[shell_id]

    def _shell(self, request: soap.Request) -> _Shell:
        """Caller holds the lock."""
        shell_id = request.shell_id
        shell = self._shells.get(shell_id or "")
        now = time.monotonic()
        if shell is not None and now - shell.last_activity > shell.idle_timeout:
            del self._shells[shell.shell_id]
            shell = None
        if shell is None:
            raise soap.BadRequest(
                f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell "
                f"was not found on the server. Possible causes are: the specified ShellId is incorrect or the "
                f"shell no longer exists on the server.",
                code=soap.ERROR_WSMAN_SHELL_NOT_FOUND, subcode="wsman:InvalidSelectors")
        shell.last_activity = now
        return shell

    # ------------------------------------------------------------------ actions

    def _do_create(self, request: soap.Request) -> str:
        shell_el = _body_element(request, "rsp:Shell", "Create needs an rsp:Shell body")
        creation = shell_el.find("pwsh:creationXml", soap.NS)
        if creation is None or not (creation.text or "").strip():
            raise soap.BadRequest("this endpoint serves PowerShell only: the shell needs a creationXml")
        shell_id = (shell_el.attrib.get("ShellId") or str(uuid.uuid4())).upper()
        idle_text = shell_el.findtext("rsp:IdleTimeOut", default=None, namespaces=soap.NS)
        idle = min(soap.parse_duration(idle_text, self.idle_timeout), self.idle_timeout)
        # Leave room in the client's envelope for the SOAP around each base64 stream.
        chunk = max(4096, (request.max_envelope_size - 4096) * 3 // 4)
        shell = _Shell(
            shell_id=shell_id, resource_uri=request.resource_uri, owner=self._credentials()[0],
            idle_timeout=idle,
            input_streams=shell_el.findtext("rsp:InputStreams", default="stdin pr", namespaces=soap.NS),
            output_streams=shell_el.findtext("rsp:OutputStreams", default="stdout", namespaces=soap.NS),
            pool=ServerRunspacePool(), chunk=chunk)
        data = _b64(creation.text or "", "creationXml")
        with self._cond:
            self._sweep()
            self._feed(shell, None, data)
            self._shells[shell_id] = shell
            self._cond.notify_all()
        return soap.create_response(self.url, request.resource_uri, shell_id, shell.owner, shell.idle_timeout,
                                    shell.input_streams, shell.output_streams)

    def _do_get(self, request: soap.Request) -> str:
        with self._cond:
            shell = self._shell(request)
            return soap.shell_element(shell.shell_id, shell.resource_uri, shell.owner, shell.idle_timeout,
                                      shell.input_streams, shell.output_streams, "Connected")

    def _do_delete(self, request: soap.Request) -> str:
        with self._cond:
            shell = self._shell(request)
            del self._shells[shell.shell_id]
            self._cond.notify_all()
        return ""

    def _do_command(self, request: soap.Request) -> str:
        line = _body_element(request, "rsp:CommandLine", "Command needs an rsp:CommandLine body")
        command_id = (line.attrib.get("CommandId") or str(uuid.uuid4())).upper()
        data = b"".join(_b64(a.text or "", "Arguments") for a in line.findall("rsp:Arguments", soap.NS))
        with self._cond:
            shell = self._shell(request)
            pid = uuid.UUID(command_id)
            # The pipeline must exist before psrpcore sees its CreatePipeline message.
            shell.pipelines[pid] = _Pipeline(pid=pid, command_id=command_id, pipe=ServerPipeline(shell.pool, pid))
            self._counters["pipelines"] += 1
            self._feed(shell, pid, data)
        return f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    def _do_send(self, request: soap.Request) -> str:
        body = request.body
        streams = body.findall("rsp:Send/rsp:Stream", soap.NS) if body is not None else []
        with self._cond:
            shell = self._shell(request)
            for stream in streams:
                cid = stream.attrib.get("CommandId")
                pid = uuid.UUID(cid) if cid else None
                if pid is not None and pid not in shell.pipelines:
                    raise soap.BadRequest(f"no command {cid} in shell {shell.shell_id}")
                self._feed(shell, pid, _b64(stream.text or "", "Stream"))
        return "<rsp:SendResponse/>"

    def _do_signal(self, request: soap.Request) -> str:
        signal = _body_element(request, "rsp:Signal", "Signal needs an rsp:Signal body")
        code = (signal.findtext("rsp:Code", default="", namespaces=soap.NS) or "").strip()
        cid = signal.attrib.get("CommandId")
        with self._cond:
            shell = self._shell(request)
            entry = shell.pipelines.get(uuid.UUID(cid)) if cid else None
            if entry is not None:
                if code.lower() == SIGNAL_TERMINATE or code.lower().endswith("/terminate"):
                    shell.pipelines.pop(entry.pid, None)
                    shell.queues.pop(entry.pid, None)
                elif entry.pipe.state == PSInvocationState.Running:
                    entry.pipe.stop()
                    entry.finished = True
                    self._drain(shell)
                self._cond.notify_all()
        return "<rsp:SignalResponse/>"

    def _do_receive(self, request: soap.Request) -> str:
        body = request.body
        desired = body.find("rsp:Receive/rsp:DesiredStream", soap.NS) if body is not None else None
        cid = desired.attrib.get("CommandId") if desired is not None else None
        stream_name = (desired.text or "stdout").split()[0] if desired is not None else "stdout"
        pid = uuid.UUID(cid) if cid else None
        wait = min(request.operation_timeout, MAX_LONG_POLL)
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                shell = self._shell(request)
                entry = shell.pipelines.get(pid) if pid else None
                if pid is not None and entry is None:
                    raise soap.BadRequest(f"no command {cid} in shell {shell.shell_id}",
                                          code=soap.ERROR_WSMAN_SHELL_NOT_FOUND, subcode="wsman:InvalidSelectors")
                if entry is not None and entry.fault is not None:
                    fault, entry.fault = entry.fault, None
                    self._apply_fault(request, fault)
                chunks = self._take(shell, pid)
                done = entry is not None and entry.finished and not shell.queues.get(pid)
                if chunks or done:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping.is_set():
                    self._counters["receive_timeouts"] += 1
                    raise soap.BadRequest(
                        "The WS-Management service cannot complete the operation within the time specified "
                        "in OperationTimeout.", code=soap.ERROR_WSMAN_OPERATION_TIMEDOUT, subcode="wsman:TimedOut")
                self._cond.wait(remaining)
            if done and entry is not None:
                shell.pipelines.pop(pid, None)
                shell.queues.pop(pid, None)
                try:
                    entry.pipe.close()
                except Exception:  # noqa: BLE001 - an odd state must not fail the final Receive
                    pass
        streams = [(stream_name, cid.upper() if cid else None, base64.b64encode(c).decode()) for c in chunks]
        return soap.receive_response(streams, cid.upper() if cid else None, done)

    def _apply_fault(self, request: soap.Request, fault: TwinFault) -> None:
        self._counters["injected_" + fault.kind.replace("-", "_")] += 1
        if fault.kind == "connection-reset":
            raise Drop()
        if fault.kind == "hang":
            raise Hang()
        if fault.kind == "auth-failure":
            raise Reply(401, b"", BASIC_CHALLENGE)
        raise soap.BadRequest(fault.detail or "The WS-Management service encountered an internal error.",
                              code=soap.ERROR_WSMAN_TWIN_FAULT, subcode="wsman:InternalError")

    # ------------------------------------------------------------------ PSRP plumbing (lock held)

    def _feed(self, shell: _Shell, pid: uuid.UUID | None, data: bytes) -> None:
        try:
            shell.pool.receive_data(PSRPPayload(data, StreamType.default, pid))
            while (event := shell.pool.next_event()) is not None:
                self._on_event(shell, event)
        except soap.BadRequest:
            raise
        except Exception as exc:
            raise soap.BadRequest(f"PSRP data could not be processed: {type(exc).__name__}: {exc}") from None
        self._drain(shell)

    def _on_event(self, shell: _Shell, event: Any) -> None:
        if isinstance(event, CreatePipelineEvent):
            entry = shell.pipelines[event.pipeline_id]
            pipeline = entry.pipe.metadata  # psrpcore built it from the message already; event.pipeline builds again
            entry.no_input = bool(pipeline.no_input)
            entry.statements = [
                Statement(
                    script=str(cmd.command_text),
                    parameters={str(n): to_python(v) for n, v in cmd.parameters if n},
                    arguments=[to_python(v) for n, v in cmd.parameters if not n],
                    is_script=bool(cmd.is_script),
                )
                for cmd in pipeline.commands
            ]
            opener = getattr(self.script_host, "open_input", None)  # optional: where input goes as it arrives
            if opener is not None and not entry.no_input:
                entry.inputs = opener(self.vm, entry.statements)
            self._maybe_start(shell, entry)
        elif isinstance(event, PipelineInputEvent):
            shell.pipelines[event.pipeline_id].inputs.append(to_python(event.data))
        elif isinstance(event, EndOfPipelineInputEvent):
            entry = shell.pipelines[event.pipeline_id]
            entry.input_done = True
            self._maybe_start(shell, entry)

    def _maybe_start(self, shell: _Shell, entry: _Pipeline) -> None:
        if entry.started or entry.statements is None or not (entry.no_input or entry.input_done):
            return
        entry.started = True
        entry.pipe.start()
        threading.Thread(target=self._execute, args=(shell, entry), daemon=True,
                         name=f"twin-pipeline-{self.vm}").start()

    def _execute(self, shell: _Shell, entry: _Pipeline) -> None:
        statements = entry.statements or []
        try:
            inputs = entry.inputs if hasattr(entry.inputs, "finish") else list(entry.inputs)
            result = self.script_host.run_pipeline(self.vm, statements, inputs)
        except TwinFault as fault:
            with self._cond:
                entry.fault = fault
                self._cond.notify_all()
            return
        except Exception as exc:  # the twin's bug shows as a failed pipeline, naming itself
            log.exception("twin script host failed on %s", self.vm)
            result = PipelineOutput(errors=[f"twin script host error: {type(exc).__name__}: {exc}"], failed=True)
        with self._cond:
            if entry.pipe.state != PSInvocationState.Running:  # stopped or terminated meanwhile
                return
            try:
                for value in result.output:
                    entry.pipe.write_output(to_wire(value))
                errors = list(result.errors)
                if result.failed and not errors:
                    errors = ["The pipeline failed."]
                # psrpcore has no public way to end a pipeline as Failed: a terminating error is the last error
                # record of a completed pipeline, which the harness reads the same way (ScriptResult.errors)
                for index, message in enumerate(errors):
                    terminating = result.failed and index == len(errors) - 1
                    entry.pipe.write_error(NETException(Message=message),
                                           ErrorCategoryInfo(Category=ErrorCategory.NotSpecified),
                                           fully_qualified_error_id="PatchgateTwinTerminatingError" if terminating
                                           else "PatchgateTwinError")
                entry.pipe.complete()
            finally:
                entry.finished = True
                self._drain(shell)
                self._cond.notify_all()

    def _drain(self, shell: _Shell) -> None:
        """Route psrpcore's outgoing fragments to the pool or to their pipeline (Receive asks per target)."""
        while (payload := shell.pool.data_to_send(shell.chunk)) is not None:
            shell.queues.setdefault(payload.pipeline_id, collections.deque()).append(payload.data)

    def _take(self, shell: _Shell, pid: uuid.UUID | None) -> list[bytes]:
        queue = shell.queues.get(pid)
        taken: list[bytes] = []
        size = 0
        while queue and (not taken or size + len(queue[0]) <= shell.chunk):
            chunk = queue.popleft()
            taken.append(chunk)
            size += len(chunk)
        return taken


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise soap.BadRequest(f"{what} is not valid base64") from None


def _body_element(request: soap.Request, path: str, missing: str) -> ET.Element:
    """The element at ``path`` in the request's body; a WSMan fault saying ``missing`` when there is none."""
    element = request.body.find(path, soap.NS) if request.body is not None else None
    if element is None:
        raise soap.BadRequest(missing)
    return element
