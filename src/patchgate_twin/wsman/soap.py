"""The SOAP/WSMan envelope: read what a WinRM client sends, write what a Windows host answers.

Only the parts pypsrp (and PowerShell's own WSMan client) rely on are modelled: the addressing headers,
the shell selector, the operation timeout, the rsp: shell bodies and the WSManFault detail. Responses are
built as text because every payload inside them is base64 (nothing needs escaping but messages).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}

_ACTION_BASE = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get": "Get",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command": "Command",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive": "Receive",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send": "Send",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal": "Signal",
}

COMMAND_STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
COMMAND_STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# WSManFault codes. The first two are the ones pypsrp itself tests for (powershell.py / is_alive), so they are
# what a real host sends; the others are [U]: plausible Windows codes, not checked against a real host.
ERROR_WSMAN_OPERATION_TIMEDOUT = 0x80338029
ERROR_WSMAN_SHELL_NOT_FOUND = 0x8033805B  # pypsrp names it UNEXPECTED_SELECTORS; Windows text: "shell was not found"
ERROR_WSMAN_INVALID_REQUEST = 0x8033803A  # [U]
ERROR_WSMAN_ACTION_NOT_SUPPORTED = 0x8033800B  # [U]
ERROR_WSMAN_TWIN_FAULT = 0x803381A6  # [U] stands for "the host broke the request" in fault injection


class BadRequest(Exception):
    """A request the twin cannot understand; answered with a WSMan fault, never a crash."""

    def __init__(self, message: str, code: int = ERROR_WSMAN_INVALID_REQUEST, subcode: str = "wsman:InvalidParameter"):
        self.code = code
        self.subcode = subcode
        super().__init__(message)


@dataclass
class Request:
    """The fields of one WSMan request that the endpoint acts on."""

    action: str  # short name: Create, Receive, ...
    action_uri: str
    message_id: str
    resource_uri: str
    operation_timeout: float
    max_envelope_size: int
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None

    @property
    def shell_id(self) -> str | None:
        value = self.selectors.get("ShellId")
        return value.upper() if value else None


_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str | None, default: float) -> float:
    """xs:duration as WSMan uses it (PT20S, PT20.000S, P0DT0H5M0S)."""
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if not match:
        raise BadRequest(f"OperationTimeout '{text}' is not an xs:duration")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def _text(parent: ET.Element, path: str) -> str | None:
    element = parent.find(path, NS)
    return element.text.strip() if element is not None and element.text else None


def parse_request(data: bytes) -> Request:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise BadRequest(f"the request is not well-formed XML: {exc}") from None
    header = root.find("s:Header", NS)
    if header is None:
        raise BadRequest("the request has no SOAP header")
    action_uri = _text(header, "wsa:Action") or ""
    action = _ACTION_BASE.get(action_uri)
    if action is None:
        raise BadRequest(f"action '{action_uri}' is not supported by this endpoint",
                         code=ERROR_WSMAN_ACTION_NOT_SUPPORTED, subcode="wsa:ActionNotSupported")
    message_id = _text(header, "wsa:MessageID")
    if not message_id:
        raise BadRequest("the request has no wsa:MessageID")
    selectors = {sel.attrib.get("Name", ""): (sel.text or "").strip()
                 for sel in header.findall("wsman:SelectorSet/wsman:Selector", NS)}
    options = {opt.attrib.get("Name", ""): (opt.text or "").strip()
               for opt in header.findall("wsman:OptionSet/wsman:Option", NS)}
    max_env = _text(header, "wsman:MaxEnvelopeSize")
    return Request(
        action=action,
        action_uri=action_uri,
        message_id=message_id,
        resource_uri=_text(header, "wsman:ResourceURI") or "",
        operation_timeout=parse_duration(_text(header, "wsman:OperationTimeout"), 60.0),
        max_envelope_size=int(max_env) if max_env and max_env.isdigit() else 153600,
        selectors=selectors,
        options=options,
        body=root.find("s:Body", NS),
    )


def envelope(action_uri: str, relates_to: str, body: str) -> bytes:
    """A response envelope; ``wsa:RelatesTo`` always echoes the request's MessageID (pypsrp checks it)."""
    return (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:wsa="{NS["wsa"]}" xmlns:wsman="{NS["wsman"]}" '
        f'xmlns:rsp="{NS["rsp"]}" xmlns:wst="{NS["wst"]}" xml:lang="en-US">'
        f"<s:Header><wsa:Action>{escape(action_uri)}</wsa:Action>"
        f"<wsa:MessageID>uuid:{str(uuid.uuid4()).upper()}</wsa:MessageID>"
        f"<wsa:To>{ANONYMOUS}</wsa:To>"
        f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


def fault(relates_to: str, code: int, message: str, machine: str, subcode: str = "wsman:InternalError",
          receiver: bool = True) -> bytes:
    """A SOAP 1.2 fault with the WSManFault detail pypsrp turns into ``WSManFaultError(code, ...)``."""
    text = escape(message)
    body = (
        f'<s:Fault><s:Code><s:Value>s:{"Receiver" if receiver else "Sender"}</s:Value>'
        f"<s:Subcode><s:Value>{escape(subcode)}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="{NS["f"]}" Code="{code}" Machine="{escape(machine)}">'
        f"<f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return envelope(FAULT_ACTION, relates_to, body)


def create_response(endpoint: str, resource_uri: str, shell_id: str, owner: str, idle_timeout: float,
                    input_streams: str, output_streams: str) -> str:
    return (
        f"<wst:ResourceCreated><wsa:Address>{escape(endpoint)}</wsa:Address><wsa:ReferenceParameters>"
        f"<wsman:ResourceURI>{escape(resource_uri)}</wsman:ResourceURI><wsman:SelectorSet>"
        f'<wsman:Selector Name="ShellId">{shell_id}</wsman:Selector></wsman:SelectorSet>'
        f"</wsa:ReferenceParameters></wst:ResourceCreated>"
        + shell_element(shell_id, resource_uri, owner, idle_timeout, input_streams, output_streams, "Connected")
    )


def shell_element(shell_id: str, resource_uri: str, owner: str, idle_timeout: float, input_streams: str,
                  output_streams: str, state: str) -> str:
    return (
        f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>"
        f"<rsp:IdleTimeOut>PT{idle_timeout:.3f}S</rsp:IdleTimeOut>"
        f"<rsp:InputStreams>{escape(input_streams)}</rsp:InputStreams>"
        f"<rsp:OutputStreams>{escape(output_streams)}</rsp:OutputStreams>"
        f"<rsp:State>{state}</rsp:State>"
        f"<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
        f"</rsp:Shell>"
    )


def receive_response(streams: list[tuple[str, str | None, str]], command_id: str | None, done: bool) -> str:
    """``streams`` is (name, command id, base64 data)."""
    parts = ["<rsp:ReceiveResponse>"]
    for name, cid, data in streams:
        cid_attr = f' CommandId="{cid}"' if cid else ""
        parts.append(f'<rsp:Stream Name="{name}"{cid_attr}>{data}</rsp:Stream>')
    if command_id:
        state = COMMAND_STATE_DONE if done else COMMAND_STATE_RUNNING
        parts.append(f'<rsp:CommandState CommandId="{command_id}" State="{state}"/>')
    parts.append("</rsp:ReceiveResponse>")
    return "".join(parts)
