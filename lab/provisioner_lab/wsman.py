"""WS-Management (SOAP) envelopes: parse requests, build responses and faults.

Only what a PSRP client (pypsrp) sends to a PowerShell endpoint is understood: transfer Create/Delete/Get and shell
Command/Send/Receive/Signal. Responses are built as text (faster than ElementTree and byte-for-byte predictable).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_WSMV = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
NS_RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_WST = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
NS_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
NS_PWSH = "http://schemas.microsoft.com/powershell"

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACTION_COMMAND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
ACTION_SEND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
ACTION_RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
ACTION_SIGNAL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"

#: Short action names used for counters and fault selection.
ACTION_NAMES: dict[str, str] = {
    ACTION_CREATE: "Create",
    ACTION_DELETE: "Delete",
    ACTION_GET: "Get",
    ACTION_COMMAND: "Command",
    ACTION_SEND: "Send",
    ACTION_RECEIVE: "Receive",
    ACTION_SIGNAL: "Signal",
}

SHELL_RESOURCE_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
COMMAND_STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
COMMAND_STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/Terminate"
SIGNAL_PS_CTRL_C = "powershell/signal/ctrl_c"
SIGNAL_CTRL_C = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c"

DEFAULT_MAX_ENVELOPE = 153600
DEFAULT_OPERATION_TIMEOUT = 60.0

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


class WSManFault(Exception):
    """A SOAP fault to send back (always HTTP 500, which pypsrp needs to raise ``WSManFaultError``)."""

    def __init__(self, code: int, subcode: str, reason: str, *, machine: str = "localhost") -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.machine = machine


def fault_timed_out() -> WSManFault:
    return WSManFault(
        2150858793,
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )


def fault_shell_not_found(shell_id: str) -> WSManFault:
    return WSManFault(
        2150858843,
        "w:InvalidSelectors",
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found "
        "on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on "
        "the server. Provide the correct ShellId or create a new shell and retry the operation.",
    )


def fault_invalid_resource_uri(configuration: str, host: str) -> WSManFault:
    return WSManFault(
        2150858770,
        "w:InvalidResourceURI",
        f"The WS-Management service cannot process the request. Cannot find the {configuration} session "
        f"configuration in the WSMan: drive on the {host} computer.",
    )


def fault_action_not_supported(action: str) -> WSManFault:
    return WSManFault(
        2150858771,
        "a:ActionNotSupported",
        f"The WS-Management service cannot process the request because the action {action} is not supported.",
    )


def fault_invalid(reason: str) -> WSManFault:
    return WSManFault(2150858817, "w:InvalidParameter", reason)


def parse_duration(text: str | None, default: float) -> float:
    """Parse an xs:duration such as ``PT20S``/``PT20.000S`` into seconds."""
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if not match:
        return default
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


@dataclass
class Request:
    """The parts of a WSMan request the lab uses."""

    action: str
    message_id: str
    resource_uri: str
    max_envelope_size: int
    operation_timeout: float
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    body: ElementTree.Element | None = None

    @property
    def name(self) -> str:
        return ACTION_NAMES.get(self.action, "Other")

    @property
    def shell_id(self) -> str | None:
        value = self.selectors.get("ShellId")
        return value.upper() if value else None


def _text(parent: ElementTree.Element, path: str) -> str | None:
    element = parent.find(path)
    return element.text if element is not None else None


def parse_request(data: bytes) -> Request:
    """Parse a SOAP envelope; raises :class:`WSManFault` for malformed input."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise fault_invalid(f"The request is not a valid SOAP envelope: {exc}") from exc
    header = root.find(f"{{{NS_S}}}Header")
    if header is None:
        raise fault_invalid("The SOAP envelope has no header.")
    action = _text(header, f"{{{NS_WSA}}}Action") or ""
    message_id = _text(header, f"{{{NS_WSA}}}MessageID") or ""
    resource_uri = _text(header, f"{{{NS_WSMAN}}}ResourceURI") or ""
    try:
        max_env = int(_text(header, f"{{{NS_WSMAN}}}MaxEnvelopeSize") or DEFAULT_MAX_ENVELOPE)
    except ValueError:
        max_env = DEFAULT_MAX_ENVELOPE
    timeout = parse_duration(_text(header, f"{{{NS_WSMAN}}}OperationTimeout"), DEFAULT_OPERATION_TIMEOUT)
    selectors: dict[str, str] = {}
    for sel in header.iterfind(f"{{{NS_WSMAN}}}SelectorSet/{{{NS_WSMAN}}}Selector"):
        selectors[sel.attrib.get("Name", "")] = sel.text or ""
    options: dict[str, str] = {}
    for opt in header.iterfind(f"{{{NS_WSMAN}}}OptionSet/{{{NS_WSMAN}}}Option"):
        options[opt.attrib.get("Name", "")] = opt.text or ""
    body_el = root.find(f"{{{NS_S}}}Body")
    body = body_el[0] if body_el is not None and len(body_el) else None
    return Request(action, message_id, resource_uri, max_env, timeout, selectors, options, body)


_ENVELOPE_HEAD = (
    '<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{wsa}" xmlns:x="{wst}" xmlns:w="{wsman}" '
    'xmlns:rsp="{rsp}" xmlns:p="{wsmv}"><s:Header><a:Action>{action}</a:Action>'
    "<a:MessageID>uuid:{mid}</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    "</a:To><a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body>"
)


def _envelope_head(action: str, relates_to: str) -> str:
    return _ENVELOPE_HEAD.format(
        s=NS_S,
        wsa=NS_WSA,
        wst=NS_WST,
        wsman=NS_WSMAN,
        rsp=NS_RSP,
        wsmv=NS_WSMV,
        action=escape(action),
        mid=str(uuid.uuid4()).upper(),
        relates=escape(relates_to),
    )


_ENVELOPE_TAIL = "</s:Body></s:Envelope>"


def envelope(action: str, relates_to: str, body: str) -> bytes:
    """A response envelope for ``action`` relating to the request's MessageID."""
    return (_envelope_head(action, relates_to) + body + _ENVELOPE_TAIL).encode("utf-8")


#: Bytes of a Receive response that are not stream data (envelope, CommandState); generous on purpose.
RECEIVE_OVERHEAD = 2048


def fault_envelope(fault: WSManFault, relates_to: str | None) -> bytes:
    action = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
    sub, reason, machine = escape(fault.subcode), escape(fault.reason), quoteattr(fault.machine)
    body = (
        f"<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{sub}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason><s:Detail>'
        f'<f:WSManFault xmlns:f="{NS_FAULT}" Code="{fault.code}" Machine={machine}><f:Message>{reason}</f:Message>'
        "</f:WSManFault></s:Detail></s:Fault>"
    )
    return envelope(action, relates_to or "", body)


def _shell_fields(shell_id: str, resource_uri: str, owner: str, client_ip: str) -> str:
    return (
        f"<rsp:ShellId>{escape(shell_id)}</rsp:ShellId><rsp:Name>WinRM1</rsp:Name>"
        f"<rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri><rsp:Owner>{escape(owner)}</rsp:Owner>"
        f"<rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>"
    )


def create_response(req: Request, shell_id: str, address: str, owner: str, client_ip: str) -> bytes:
    sid, uri = escape(shell_id), escape(req.resource_uri)
    body = (
        f"<x:ResourceCreated><a:Address>{escape(address)}</a:Address><a:ReferenceParameters>"
        f'<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{sid}</w:Selector>'
        "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
        f'<rsp:Shell xmlns:rsp="{NS_RSP}">{_shell_fields(shell_id, req.resource_uri, owner, client_ip)}'
        "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin pr</rsp:InputStreams>"
        "<rsp:OutputStreams>stdout</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
        "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
    )
    return envelope(ACTION_CREATE + "Response", req.message_id, body)


def get_shell_response(req: Request, shell_id: str, resource_uri: str, owner: str, client_ip: str) -> bytes:
    body = (
        f"<rsp:Shell>{_shell_fields(shell_id, resource_uri, owner, client_ip)}"
        "<rsp:ProcessId>0</rsp:ProcessId><rsp:State>Connected</rsp:State><rsp:InputStreams>stdin pr"
        "</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams></rsp:Shell>"
    )
    return envelope(ACTION_GET + "Response", req.message_id, body)


def command_response(req: Request, command_id: str) -> bytes:
    body = f"<rsp:CommandResponse><rsp:CommandId>{escape(command_id)}</rsp:CommandId></rsp:CommandResponse>"
    return envelope(ACTION_COMMAND + "Response", req.message_id, body)


def send_response(req: Request) -> bytes:
    return envelope(ACTION_SEND + "Response", req.message_id, "<rsp:SendResponse/>")


def signal_response(req: Request) -> bytes:
    return envelope(ACTION_SIGNAL + "Response", req.message_id, "<rsp:SignalResponse/>")


def delete_response(req: Request) -> bytes:
    return envelope(ACTION_DELETE + "Response", req.message_id, "")


def receive_response(req: Request, command_id: str | None, b64_data: str | bytes, done: bool) -> bytes:
    """The Receive response; ``b64_data`` is the base64 stream text (bytes: already encoded, not copied again)."""
    data = b64_data.encode("utf-8") if isinstance(b64_data, str) else b64_data
    cid = f" CommandId={quoteattr(command_id)}" if command_id else ""
    before = ["<rsp:ReceiveResponse>"]
    after = []
    if data:
        before.append(f'<rsp:Stream Name="stdout"{cid}>')
        after.append("</rsp:Stream>")
    if command_id:
        if done:
            after.append(
                f'<rsp:CommandState{cid} State="{COMMAND_STATE_DONE}"><rsp:ExitCode>0</rsp:ExitCode>'
                "</rsp:CommandState>"
            )
        else:
            after.append(f'<rsp:CommandState{cid} State="{COMMAND_STATE_RUNNING}"/>')
    after.append("</rsp:ReceiveResponse>")
    after.append(_ENVELOPE_TAIL)
    # joined as bytes: the stream data (up to MaxEnvelopeSize) is not decoded, concatenated and encoded again
    head = _envelope_head(ACTION_RECEIVE + "Response", req.message_id) + "".join(before)
    return b"".join((head.encode("utf-8"), data, "".join(after).encode("utf-8")))


def max_stream_bytes(max_envelope_size: int) -> int:
    """Raw (pre-base64) stream bytes that fit in one Receive response of ``max_envelope_size``."""
    usable = max(max_envelope_size - RECEIVE_OVERHEAD, 1024)
    return (usable // 4) * 3
