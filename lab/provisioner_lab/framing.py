"""PSRP messages (MS-PSRP 2.2.1) and their fragments (MS-PSRP 2.2.4), framed by the lab itself.

psrpcore frames what it sends and reads what it receives, but has no public API for the wire format, and the lab
needs both: it reads some client messages itself (CREATE_PIPELINE on its fast path, the pool's runspace requests)
and sends messages psrpcore never builds (output already rendered to CLIXML by :class:`clixml.Writer`). So every
message of a pool passes through here: :class:`Defragmenter` joins the client's fragments into messages, and
:class:`Outbox` cuts the messages to send (the lab's own and those psrpcore built) into fragments, numbering them
with the one ObjectId counter of the pool, as a PowerShell server does.

A fragment: ObjectId (8 bytes, big-endian), FragmentId (8), flags (1 byte: 0x1 start, 0x2 end), BlobLength (4),
the blob. A message: Destination (4 bytes, little-endian; 1 the client, 2 the server), MessageType (4), the
runspace pool id (16, .NET GUID byte order), the pipeline id (16; all zero for the pool), the data.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from psrpcore import PSRPCoreError

DESTINATION_CLIENT = 0x1
DESTINATION_SERVER = 0x2
_FRAGMENT = struct.Struct(">QQBI")
_MESSAGE = struct.Struct("<II")
_START, _END = 0x1, 0x2
FRAGMENT_HEADER = _FRAGMENT.size  # 21
MESSAGE_HEADER = 40
_BOM = b"\xef\xbb\xbf"
_NO_PIPELINE = bytes(16)


class FramingError(PSRPCoreError):
    """Bytes that are not PSRP fragments and messages as MS-PSRP defines them (the server answers with a fault)."""


@dataclass(frozen=True)
class Message:
    """One whole PSRP message: its ObjectId, type, pipeline id (None: the pool) and its bytes, header included."""

    object_id: int
    message_type: int
    pipeline_id: uuid.UUID | None
    raw: bytes

    @property
    def data(self) -> bytes:
        """The message's CLIXML (a leading UTF-8 byte order mark removed, as PowerShell reads it)."""
        data = self.raw[MESSAGE_HEADER:]
        return data[len(_BOM):] if data.startswith(_BOM) else data

    def as_fragment(self) -> bytes:
        """This message as one fragment (start and end), the form psrpcore's ``receive_data`` reads best."""
        return _FRAGMENT.pack(self.object_id, 0, _START | _END, len(self.raw)) + self.raw


def message(destination: int, message_type: int, runspace_pool_id: uuid.UUID, pipeline_id: uuid.UUID | None,
            data: bytes) -> bytes:
    """A message's bytes (MS-PSRP 2.2.1)."""
    pipeline = _NO_PIPELINE if pipeline_id is None else _bytes_le(pipeline_id)
    return b"".join((_MESSAGE.pack(destination, message_type), _bytes_le(runspace_pool_id), pipeline, data))


@functools.lru_cache(maxsize=256)
def _bytes_le(guid: uuid.UUID) -> bytes:
    return guid.bytes_le


@functools.lru_cache(maxsize=256)
def _guid(bytes_le: bytes) -> uuid.UUID:
    """A GUID from its 16 bytes in .NET order (UUIDs are immutable: one object serves every message of a pipeline)."""
    return uuid.UUID(bytes_le=bytes_le)


@dataclass
class Defragmenter:
    """Joins fragments into messages; a message may span several sends, and one send carry several messages
    (of one or more objects, their fragments interleaved or not)."""

    partial: dict[int, list[bytes]] = field(default_factory=dict)
    pending: bytes = b""

    def feed(self, data: bytes) -> Iterator[Message]:
        buffer = self.pending + data if self.pending else data
        offset = 0
        while len(buffer) - offset >= FRAGMENT_HEADER:
            object_id, fragment_id, flags, length = _FRAGMENT.unpack_from(buffer, offset)
            end = offset + FRAGMENT_HEADER + length
            if end > len(buffer):
                break  # the rest of this fragment comes with the next send
            blob = buffer[offset + FRAGMENT_HEADER:end]
            offset = end
            parts = self.partial.setdefault(object_id, [])
            if fragment_id != len(parts) or bool(flags & _START) != (fragment_id == 0):
                raise FramingError(f"fragment {fragment_id} of object {object_id} out of order")
            parts.append(blob)
            if flags & _END:
                del self.partial[object_id]
                yield _message(object_id, b"".join(parts) if len(parts) > 1 else blob)
        self.pending = buffer[offset:]


def _message(object_id: int, raw: bytes) -> Message:
    if len(raw) < MESSAGE_HEADER:
        raise FramingError(f"a PSRP message of {len(raw)} bytes (its header alone is {MESSAGE_HEADER})")
    message_type = _MESSAGE.unpack_from(raw)[1]
    pipeline = raw[24:40]
    return Message(object_id, message_type, None if pipeline == _NO_PIPELINE else _guid(bytes(pipeline)), raw)


class Outbox:
    """Cuts messages into fragments of at most ``fragment_size`` bytes (header included), each with the next
    ObjectId of the pool."""

    def __init__(self, fragment_size: int) -> None:
        if fragment_size <= FRAGMENT_HEADER:
            raise ValueError(f"a fragment needs more than its {FRAGMENT_HEADER}-byte header")
        self._blob_size = fragment_size - FRAGMENT_HEADER
        self._next_object_id = 1

    def fragments(self, raw: bytes) -> list[bytes]:
        object_id = self._next_object_id
        self._next_object_id += 1
        size = self._blob_size
        if len(raw) <= size:
            return [_FRAGMENT.pack(object_id, 0, _START | _END, len(raw)) + raw]
        count = -(-len(raw) // size)
        return [
            _FRAGMENT.pack(object_id, index, (_START if index == 0 else 0) | (_END if index == count - 1 else 0),
                           len(blob)) + blob
            for index, blob in ((i, raw[i * size:(i + 1) * size]) for i in range(count))
        ]
