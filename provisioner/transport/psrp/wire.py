"""PSRP fragments and messages on the wire (MS-PSRP 2.2.4 and 2.2.1): the little the client does itself.

Incoming fragments are joined into messages here so that pipeline output (``PIPELINE_OUTPUT``) goes to the tool's
own reader (:mod:`provisioner.transport.psrp.clixml`) and every other message to psrpcore, through its public
``receive_data``, as one complete fragment (psrpcore keeps the protocol state: pool and pipeline states, errors,
warnings, private data).

A fragment: ObjectId (8 bytes, big-endian), FragmentId (8), flags (1: 0x1 start, 0x2 end), BlobLength (4), blob.
A message: Destination (4, little-endian), MessageType (4), RPID (16), PID (16), data.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

PIPELINE_OUTPUT = 0x00041004
_FRAGMENT = struct.Struct(">QQBI")
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


def _message(object_id: int, raw: bytes) -> Message:
    if len(raw) < MESSAGE_HEADER:
        raise WireError(f"a PSRP message of {len(raw)} bytes (its header alone is {MESSAGE_HEADER})")
    message_type = int.from_bytes(raw[4:8], "little")
    pipeline = uuid.UUID(bytes_le=raw[24:40])
    return Message(object_id, message_type, None if pipeline.int == 0 else pipeline, raw)
