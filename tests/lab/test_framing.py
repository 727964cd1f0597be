"""The lab's PSRP framing (MS-PSRP 2.2.1 messages, 2.2.4 fragments): what it cuts it joins again however the bytes
arrive, psrpcore reads what it writes and it reads what psrpcore writes, and broken framing is refused."""

from __future__ import annotations

import uuid

import psrpcore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from provisioner_lab import framing
from psrpcore.types import PSRPMessageType

POOL = uuid.UUID("0b6a0f0e-94b5-4d4a-8d8a-6f1c8d3f2a11")
PIPELINE = uuid.UUID("f3c2b1a0-1111-4222-8333-944455556666")

messages = st.lists(
    st.tuples(st.sampled_from([None, PIPELINE]), st.binary(max_size=300)), min_size=1, max_size=6
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(min_value=framing.FRAGMENT_HEADER + 1, max_value=200),
       st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_fragments_join_into_the_same_messages_however_the_bytes_arrive(
    sent: list[tuple[uuid.UUID | None, bytes]], fragment_size: int, cuts: list[int]
) -> None:
    outbox = framing.Outbox(fragment_size)
    raws = [framing.message(framing.DESTINATION_CLIENT, PSRPMessageType.PipelineOutput.value, POOL, pid, data)
            for pid, data in sent]
    fragments = [fragment for raw in raws for fragment in outbox.fragments(raw)]
    assert all(len(fragment) <= fragment_size for fragment in fragments)
    defragmenter = framing.Defragmenter()
    received = [m for part in _split(b"".join(fragments), cuts) for m in defragmenter.feed(part)]
    assert [m.raw for m in received] == raws
    assert [m.pipeline_id for m in received] == [pid for pid, _ in sent]
    assert [m.object_id for m in received] == list(range(1, len(sent) + 1))  # the pool's one counter, in order
    assert [m.message_type for m in received] == [PSRPMessageType.PipelineOutput.value] * len(sent)
    assert defragmenter.partial == {} and defragmenter.pending == b""


def test_the_data_of_a_message_drops_a_utf8_byte_order_mark() -> None:
    raw = framing.message(framing.DESTINATION_SERVER, PSRPMessageType.CreatePipeline.value, POOL, PIPELINE,
                          b"\xef\xbb\xbf<Obj />")
    (message,) = framing.Defragmenter().feed(framing.Outbox(1000).fragments(raw)[0])
    assert message.data == b"<Obj />" and message.raw == raw


def test_psrpcore_reads_what_the_lab_frames() -> None:
    """A client pool (psrpcore) reads the server's messages, cut into the smallest fragments, as they were sent."""
    client = psrpcore.ClientRunspacePool()
    client.open()
    server = psrpcore.ServerRunspacePool()
    opening = client.data_to_send()
    assert opening is not None
    server.receive_data(opening)
    while server.next_event() is not None:
        pass
    outbox = framing.Outbox(framing.FRAGMENT_HEADER + 7)
    wire = b""
    while (payload := server.data_to_send()) is not None:
        for message in framing.Defragmenter().feed(payload.data):
            wire += b"".join(outbox.fragments(message.raw))
    client.receive_data(psrpcore.PSRPPayload(wire, psrpcore.StreamType.default, None))
    events = []
    while (event := client.next_event()) is not None:
        events.append(type(event).__name__)
    assert events == ["SessionCapabilityEvent", "ApplicationPrivateDataEvent", "RunspacePoolStateEvent"]
    assert client.state.name == "Opened"


def test_the_lab_reads_what_psrpcore_frames() -> None:
    client = psrpcore.ClientRunspacePool()
    client.open()
    wire = b""
    while (payload := client.data_to_send(50)) is not None:  # many fragments per message
        wire += payload.data
    received = list(framing.Defragmenter().feed(wire))
    assert [m.message_type for m in received] == [PSRPMessageType.SessionCapability.value,
                                                  PSRPMessageType.InitRunspacePool.value]
    assert all(m.pipeline_id is None and m.data.startswith(b"<Obj") for m in received)


@pytest.mark.parametrize(
    ("fragments", "error"),
    [
        ([(1, 1, 0x2, b"x" * 40)], "fragment 1 of object 1 out of order"),
        ([(1, 0, 0x1, b"x" * 10), (1, 2, 0x2, b"x" * 30)], "fragment 2 of object 1 out of order"),
        ([(1, 0, 0x2, b"x" * 40)], "fragment 0 of object 1 out of order"),  # no start flag
        ([(1, 0, 0x3, b"x" * 39)], "a PSRP message of 39 bytes"),
    ],
)
def test_broken_framing_is_refused(fragments: list[tuple[int, int, int, bytes]], error: str) -> None:
    data = b"".join(oid.to_bytes(8, "big") + fid.to_bytes(8, "big") + bytes([flags]) + len(blob).to_bytes(4, "big")
                    + blob for oid, fid, flags, blob in fragments)
    with pytest.raises(framing.FramingError, match=error):
        list(framing.Defragmenter().feed(data))


def test_a_fragment_must_hold_more_than_its_header() -> None:
    with pytest.raises(ValueError, match="21-byte header"):
        framing.Outbox(framing.FRAGMENT_HEADER)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.uuids(), min_size=1, max_size=4), st.lists(st.integers(min_value=0, max_value=3), max_size=12))
def test_pipeline_ids_read_back_whatever_the_buffer_type(pipelines: list[uuid.UUID], picks: list[int]) -> None:
    """Ids are read through a small cache of GUID bytes (and written through one of their .NET byte order): every
    message names its own pipeline, from bytes and from a bytearray (what psrpcore's ``data_to_send`` gives)."""
    sent = [pipelines[pick % len(pipelines)] for pick in picks]
    outbox = framing.Outbox(1000)
    wire = b"".join(fragment for pid in sent for fragment in outbox.fragments(
        framing.message(framing.DESTINATION_CLIENT, PSRPMessageType.PipelineOutput.value, POOL, pid, b"<S>x</S>")))
    for data in (wire, bytearray(wire)):
        received = list(framing.Defragmenter().feed(data))
        assert [m.pipeline_id for m in received] == sent
        assert all(m.raw[8:24] == POOL.bytes_le and m.raw[24:40] == pid.bytes_le
                   for m, pid in zip(received, sent, strict=True))
