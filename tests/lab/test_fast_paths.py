"""Shortcuts in the lab's wire code give the same answers as the general code they skip."""

from __future__ import annotations

import itertools
import random
import re
from xml.sax.saxutils import quoteattr

import pytest
from provisioner_lab import clixml, wsman

from .test_protocol import HOSTILE

ALPHABET = ["a", "Z", "0", " ", "_", "x", "X", "&", "<", ">", '"', "'", "\t", "\n", "\r", "\x00", "\x1f", "\x7f",
            "\x85", "\xa0", "é", "€", "\ud800", "\udfff", "😀", "\ufeff", "_x0041_", "_X0041_", "]]>"]


def _strings() -> list[str]:
    rnd = random.Random(20240611)
    texts = [*HOSTILE, *ALPHABET, *("".join(pair) for pair in itertools.product(ALPHABET, repeat=2))]
    texts += ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(0, 16))) for _ in range(3000)]
    return texts


def test_encode_string_shortcut_matches_general_path() -> None:
    for text in _strings():
        assert clixml.encode_string(text) == clixml._encode_any(text), repr(text)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<Obj RefId=\"0\"><MS><S N=\"Cmd\">Get-Mailbox</S></MS></Obj>",
        b"tab\there\nnewline",
        b"carriage\rreturn",
        b"nul\x00",
        b"escape\x1b",
        b"<![CDATA[x]]>",
        b"a]]b>",
        "Zoë".encode(),
        "bom\ufeff".encode(),
        "\ufffe".encode(),
        "\uffff".encode(),
        "😀]]>".encode(),
        b"\xff\xfe invalid utf-8",
        b"\x7f delete",
        *(bytes([code]) for code in range(128)),
    ],
)
def test_simple_ascii_shortcut_matches_general_path(data: bytes) -> None:
    assert clixml._simple(data) == clixml._simple_any(data)


_MID = re.compile(rb"<a:MessageID>uuid:[0-9A-F-]{36}</a:MessageID>")


@pytest.mark.parametrize("command_id", [None, "1E0F1AC6-7C5D-4A6E-9E43-4C1DAA7C64E2", 'odd "id" <&>'])
@pytest.mark.parametrize("done", [False, True])
@pytest.mark.parametrize("b64_data", ["", "QUJD", "QUJD" * 10000])
def test_receive_response_bytes_match_text(command_id: str | None, done: bool, b64_data: str) -> None:
    req = wsman.Request(
        action=wsman.ACTION_RECEIVE,
        message_id="uuid:ABC<&>",
        resource_uri="http://schemas.microsoft.com/powershell/Microsoft.Exchange",
        max_envelope_size=512000,
        operation_timeout=20.0,
        selectors={},
        options={},
        body=None,
    )
    from_bytes = wsman.receive_response(req, command_id, b64_data.encode("ascii"), done)
    from_text = wsman.receive_response(req, command_id, b64_data, done)
    expected = _receive_as_text(req, command_id, b64_data, done)
    # the one field that differs between any two responses: a fresh MessageID
    assert _MID.sub(b"", from_bytes) == _MID.sub(b"", expected)
    assert _MID.sub(b"", from_text) == _MID.sub(b"", expected)


def _receive_as_text(req: wsman.Request, command_id: str | None, b64_data: str, done: bool) -> bytes:
    """The Receive response as it was built before the byte path: body text through :func:`wsman.envelope`."""
    cid = f" CommandId={quoteattr(command_id)}" if command_id else ""
    parts = ["<rsp:ReceiveResponse>"]
    if b64_data:
        parts.append(f'<rsp:Stream Name="stdout"{cid}>{b64_data}</rsp:Stream>')
    if command_id:
        if done:
            parts.append(
                f'<rsp:CommandState{cid} State="{wsman.COMMAND_STATE_DONE}"><rsp:ExitCode>0</rsp:ExitCode>'
                "</rsp:CommandState>"
            )
        else:
            parts.append(f'<rsp:CommandState{cid} State="{wsman.COMMAND_STATE_RUNNING}"/>')
    parts.append("</rsp:ReceiveResponse>")
    return wsman.envelope(wsman.ACTION_RECEIVE + "Response", req.message_id, "".join(parts))
