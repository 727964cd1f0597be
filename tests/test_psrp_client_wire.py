"""The client's fragment reader (provisioner.transport.psrp.wire): messages come out whole and in order however the
server's
fragments are cut and however the receives split them; fragments out of order are refused."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.transport.psrp.wire import PIPELINE_OUTPUT, Defragmenter, WireError

RPID = uuid.UUID(int=0x1234)


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
