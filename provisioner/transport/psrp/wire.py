"""PSRP fragments and messages on the wire (MS-PSRP 2.2.4 and 2.2.1): the little the client does itself.

Incoming fragments are joined into messages here so that pipeline output (``PIPELINE_OUTPUT``) goes to the tool's
own reader (:mod:`provisioner.transport.psrp.clixml`) and every other message to psrpcore, through its public
``receive_data``, as one complete fragment (psrpcore keeps the protocol state: pool and pipeline states, errors,
warnings, private data).

Outgoing pipeline input (``PIPELINE_INPUT``, one message per record: the identities a piped read or write is fed)
is written here too (:class:`InputWriter`): a string record is ``<S>text</S>`` with psrpcore's and PowerShell's
escapes, each message one whole fragment under an object id of the writer's own range, so that psrpcore's own
messages (CREATE_PIPELINE, END_OF_PIPELINE_INPUT) keep theirs. psrpcore serialised each record through
ElementTree at ~36 us a record: a tenth of a no-op's client CPU at 1,000 mailboxes (py-spy).

A fragment: ObjectId (8 bytes, big-endian), FragmentId (8), flags (1: 0x1 start, 0x2 end), BlobLength (4), blob.
A message: Destination (4, little-endian), MessageType (4), RPID (16), PID (16), data.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

PIPELINE_INPUT = 0x00041002
PIPELINE_OUTPUT = 0x00041004
TO_SERVER = 0x00000002  #: a message's Destination when the client sends it
#: Object ids of the input fragments this module writes: far above psrpcore's counter (which starts at 1 and
#: counts every message it queues), so the two never meet; each message is one whole fragment.
INPUT_OBJECT_IDS = 1 << 62
_FRAGMENT = struct.Struct(">QQBI")
_MESSAGE_HEAD = struct.Struct("<II16s16s")
_START, _END = 0x1, 0x2
HEADER = _FRAGMENT.size  # 21
MESSAGE_HEADER = 40


class WireError(ValueError):
    """Bytes that are not PSRP fragments as the protocol defines them."""


@dataclass(frozen=True)
class Message:
    """One whole PSRP message: its object id, type, pipeline id (None: the pool) and its bytes (header included)."""

    object_id: int
    message_type: int
    pipeline_id: uuid.UUID | None
    raw: bytes

    @property
    def data(self) -> bytes:
        return self.raw[MESSAGE_HEADER:]

    def as_fragment(self) -> bytes:
        """This message as one fragment (start and end), as psrpcore's ``receive_data`` takes it."""
        return _FRAGMENT.pack(self.object_id, 0, _START | _END, len(self.raw)) + self.raw


@dataclass
class Defragmenter:
    """Joins fragments into messages; a message may span several receives, and one receive several messages."""

    partial: dict[int, list[bytes]] = field(default_factory=dict)
    pending: bytes = b""

    def feed(self, data: bytes) -> Iterator[Message]:
        buffer = self.pending + data
        offset = 0
        while len(buffer) - offset >= HEADER:
            object_id, fragment_id, flags, length = _FRAGMENT.unpack_from(buffer, offset)
            end = offset + HEADER + length
            if end > len(buffer):
                break  # the rest of this fragment comes with the next receive
            blob = buffer[offset + HEADER:end]
            offset = end
            parts = self.partial.setdefault(object_id, [])
            if fragment_id != len(parts) or bool(flags & _START) != (fragment_id == 0):
                raise WireError(f"fragment {fragment_id} of object {object_id} out of order")
            parts.append(blob)
            if flags & _END:
                del self.partial[object_id]
                yield _message(object_id, b"".join(parts))
        self.pending = buffer[offset:]


# ------------------------------------------------------------------------------------------------ pipeline input
_UNDERSCORE_X = re.compile("(?i)_(x)")  # '_x' starts an escape, so a literal one is escaped itself (either case)
_NEEDS_ESCAPE = re.compile("[\u0000-\u001F\u007F-\u009F\uD800-\uD8FF\uDC00-\uDFFF\U00010000-\U0010FFFF]")


def _escape_code_units(match: re.Match[str]) -> str:
    units = match.group(0).encode("utf-16-be", "surrogatepass")
    return "".join(f"_x{units[index:index + 2].hex().upper()}_" for index in range(0, len(units), 2))


def clixml_string(value: str) -> bytes:
    """``value`` as the ``<S>`` element psrpcore (and PowerShell) writes, UTF-8: C0 and C1 controls, surrogates and
    characters beyond the BMP as ``_xHHHH_`` UTF-16 code units (the ranges psrpcore escapes), a literal ``_x`` as
    ``_x005F_x``, then XML's ``&``, ``<`` and ``>``."""
    if not value:
        return b"<S />"
    text = _NEEDS_ESCAPE.sub(_escape_code_units, _UNDERSCORE_X.sub("_x005F_\\1", value))
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # what the escapes leave unencodable (a lone surrogate in D900-DBFF) becomes a character reference, as
    # ElementTree writes it for psrpcore
    return b"<S>" + text.encode("utf-8", "xmlcharrefreplace") + b"</S>"


@dataclass
class InputWriter:
    """PIPELINE_INPUT messages of string records, as whole fragments under the writer's own object ids."""

    next_object_id: int = INPUT_OBJECT_IDS

    def payloads(self, records: Sequence[str], runspace_pool_id: uuid.UUID, pipeline_id: uuid.UUID,
                 size: int) -> list[bytearray]:
        """The records' fragments packed into payloads of at most ``size`` bytes (one Send each); a message is
        never split. Raises WireError for a record whose message alone exceeds ``size``: the caller sends the
        records through psrpcore instead (which splits it across fragments)."""
        head = _MESSAGE_HEAD.pack(TO_SERVER, PIPELINE_INPUT, runspace_pool_id.bytes_le, pipeline_id.bytes_le)
        payloads: list[bytearray] = []
        current = bytearray()
        object_id = self.next_object_id
        for record in records:
            body = clixml_string(record)
            length = MESSAGE_HEADER + len(body)
            if HEADER + length > size:
                raise WireError(f"a pipeline input record of {len(body)} bytes does not fit one fragment")
            if len(current) + HEADER + length > size:
                payloads.append(current)
                current = bytearray()
            current += _FRAGMENT.pack(object_id, 0, _START | _END, length)
            current += head
            current += body
            object_id += 1
        if current:
            payloads.append(current)
        self.next_object_id = object_id
        return payloads


def _message(object_id: int, raw: bytes) -> Message:
    if len(raw) < MESSAGE_HEADER:
        raise WireError(f"a PSRP message of {len(raw)} bytes (its header alone is {MESSAGE_HEADER})")
    message_type = int.from_bytes(raw[4:8], "little")
    pipeline = uuid.UUID(bytes_le=raw[24:40])
    return Message(object_id, message_type, None if pipeline.int == 0 else pipeline, raw)
