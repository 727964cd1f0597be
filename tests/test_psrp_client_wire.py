"""The client's fragment reader (provisioner.transport.psrp.wire): messages come out whole and in order however the
server's fragments are cut and however the receives split them; fragments out of order are refused. Its input
writer: the very bytes psrpcore writes for each string record (differential, on any text)."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import psrpcore
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from psrpcore.types import RunspacePoolState

from provisioner.transport.psrp.wire import (
    INPUT_OBJECT_IDS,
    PIPELINE_INPUT,
    PIPELINE_OUTPUT,
    Defragmenter,
    InputWriter,
    WireError,
)

RPID = uuid.UUID(int=0x1234)
PID = uuid.UUID(int=0x5678)


def message(kind: int, pipeline: uuid.UUID | None, data: bytes) -> bytes:
    return (struct.pack("<II", 2, kind) + RPID.bytes_le + (pipeline or uuid.UUID(int=0)).bytes_le + data)


def fragments(object_id: int, raw: bytes, size: int) -> list[bytes]:
    pieces = [raw[start:start + size] for start in range(0, len(raw), size)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        flags = (1 if index == 0 else 0) | (2 if index == len(pieces) - 1 else 0)
        out.append(struct.pack(">QQBI", object_id, index, flags, len(piece)) + piece)
    return out


@st.composite
def streams(draw: Any) -> tuple[list[bytes], list[bytes]]:
    """Messages, and the bytes of their fragments cut into receives at arbitrary points."""
    count = draw(st.integers(1, 5))
    raws = [message(draw(st.sampled_from([PIPELINE_OUTPUT, 0x00041005, 0x00021006])),
                    draw(st.one_of(st.none(), st.uuids())), draw(st.binary(max_size=300))) for _ in range(count)]
    size = draw(st.integers(1, 120))
    wire = b"".join(b"".join(fragments(index + 1, raw, size)) for index, raw in enumerate(raws))
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    receives = [wire[start:end] for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    return raws, receives


@given(streams())
def test_messages_come_out_whole_however_the_receives_cut_them(case: tuple[list[bytes], list[bytes]]) -> None:
    raws, receives = case
    reader = Defragmenter()
    got = [found for data in receives for found in reader.feed(data)]
    assert [found.raw for found in got] == raws
    assert [found.object_id for found in got] == list(range(1, len(raws) + 1))
    for found, raw in zip(got, raws, strict=True):
        assert found.message_type == int.from_bytes(raw[4:8], "little")
        pipeline = uuid.UUID(bytes_le=raw[24:40])
        assert found.pipeline_id == (None if pipeline.int == 0 else pipeline)
        assert found.data == raw[40:]
        # what psrpcore is given: the same message as one fragment
        assert Defragmenter().feed(found.as_fragment()).__next__().raw == raw
    assert reader.pending == b"" and reader.partial == {}


def test_fragments_out_of_order_are_refused() -> None:
    first, second, *_ = fragments(7, message(PIPELINE_OUTPUT, None, b"x" * 50), 30)
    with pytest.raises(WireError, match="out of order"):
        list(Defragmenter().feed(second + first))


def test_a_message_shorter_than_its_header_is_refused() -> None:
    with pytest.raises(WireError, match="header"):
        list(Defragmenter().feed(fragments(1, b"short", 100)[0]))


# ------------------------------------------------------------------------------------------------ pipeline input
def opened_pool() -> psrpcore.ClientRunspacePool:
    """A client pool opened against psrpcore's server in memory (no transport)."""
    client, server = psrpcore.ClientRunspacePool(), psrpcore.ServerRunspacePool()
    client.open()
    for sender, receiver in ((client, server), (server, client)):
        while (payload := sender.data_to_send()) is not None:
            receiver.receive_data(payload)
            while receiver.next_event() is not None:
                pass
    assert client.state == RunspacePoolState.Opened
    return client


def psrpcore_input(records: list[str]) -> list[bytes]:
    """The PIPELINE_INPUT messages psrpcore queues for ``records`` (its public send)."""
    pool = opened_pool()
    pipeline = psrpcore.ClientPowerShell(pool, no_input=False)
    pipeline.add_command("Get-Mailbox")
    pipeline.start()
    pool.data_to_send()  # CREATE_PIPELINE
    for record in records:
        pipeline.send(record)
    reader = Defragmenter()
    return [found.raw for payload in iter(pool.data_to_send, None) for found in reader.feed(payload.data)]


#: any text, with what the escapes are about: lone surrogates, controls, C1, beyond the BMP, "_x", XML's specials
RECORD_TEXT = st.text(alphabet=st.one_of(
    st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, blacklist_categories=()),
    st.sampled_from(["_", "x", "X", "&", "<", ">", "\r", "\x00", "\x85", "\U0001F600", "\u2028"])))


@given(st.lists(RECORD_TEXT, min_size=1, max_size=6))
@example(["", "_X", "_x0041_", "a&b<c>", "\r\n", "\ud900", "\udc00x", "a\ud800", "\U0001F600"])
def test_input_records_are_the_bytes_psrpcore_writes(records: list[str]) -> None:
    expected = psrpcore_input(records)
    payloads = InputWriter().payloads(records, RPID, PID, 512000)
    got = [found for payload in payloads for found in Defragmenter().feed(bytes(payload))]
    assert [found.message_type for found in got] == [PIPELINE_INPUT] * len(records)
    assert [found.data for found in got] == [raw[40:] for raw in expected]  # the CLIXML, byte for byte
    assert all(found.raw[:8] == expected[0][:8] for found in got)  # destination and message type
    assert all(found.raw[8:24] == RPID.bytes_le and found.raw[24:40] == PID.bytes_le for found in got)


def test_input_records_keep_their_order_and_ids_across_sends() -> None:
    records = [f"user{index:06d}" for index in range(500)]
    writer = InputWriter()
    payloads = writer.payloads(records, RPID, PID, 2000)
    assert len(payloads) > 1 and all(len(payload) <= 2000 for payload in payloads)
    reader = Defragmenter()
    got = [found for payload in payloads for found in reader.feed(bytes(payload))]
    assert [found.data for found in got] == [f"<S>{record}</S>".encode() for record in records]
    assert [found.object_id for found in got] == list(range(INPUT_OBJECT_IDS, INPUT_OBJECT_IDS + 500))
    again = writer.payloads(["next"], RPID, PID, 2000)  # the ids go on: never one of psrpcore's, never reused
    assert next(Defragmenter().feed(bytes(again[0]))).object_id == INPUT_OBJECT_IDS + 500


def test_a_record_larger_than_a_send_is_refused() -> None:
    with pytest.raises(WireError, match="does not fit"):
        InputWriter().payloads(["x" * 200], RPID, PID, 100)
