"""GET_COMMAND_METADATA's CommandMetadata objects come from a cache of their CLIXML (``psrp.command_output``): the
messages a client receives are byte for byte those of psrpcore's ``write_output``, on every profile, with the cache
cold and warm, for an account whose RBAC trim changes a cmdlet's parameters."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psrpcore
import pytest
from provisioner_lab import framing, metadata, psrp
from provisioner_lab.exchange import EngineOptions, ExchangeEngine, load_seed
from provisioner_lab.profiles import get_profile

PROFILES = ["exchange2010sp1", "exchange2010", "exchange2013", "exchange2019"]
TRIMMED = "svc-trimmed"


def engine(profile: str) -> ExchangeEngine:
    return ExchangeEngine(load_seed(), EngineOptions(profile=profile, rbac={
        TRIMMED: {"Add-MailboxPermission": ["AutoMapping", "Deny"]}}))


def _receive_all(shell: psrp.Shell, command_id: str | None) -> bytes:
    data = b""
    while True:
        try:
            result = shell.receive(command_id, 1 << 20, 0.2, threading.Event())
        except TimeoutError:
            return data
        data += result.data
        if result.done:
            return data


def metadata_wire(profile: str, user: str, names: list[str]) -> list[tuple[int, int, bytes]]:
    """(ObjectId, message type, CLIXML) of each message the lab sends for one GET_COMMAND_METADATA."""
    shell = psrp.Shell("S1", engine(profile), user=user, resource_uri="http://schemas.microsoft.com/powershell/"
                       "Microsoft.Exchange", client_ip="127.0.0.1", profile=get_profile(profile))
    client = psrpcore.ClientRunspacePool()
    client.open()
    payload = client.data_to_send()
    assert payload is not None
    shell.receive_creation(payload.data)
    client.receive_data(psrpcore.PSRPPayload(_receive_all(shell, None), psrpcore.StreamType.default, None))
    while client.next_event() is not None:
        pass
    assert client.state.name == "Opened"
    query = psrpcore.ClientGetCommandMetadata(client, names, pipeline_id=uuid.uuid4())
    query.start()
    payload = client.data_to_send()
    assert payload is not None
    command_id = str(query.pipeline_id).upper()
    shell.create_command(command_id, payload.data)
    messages = list(framing.Defragmenter().feed(_receive_all(shell, command_id)))
    shell.close()
    return [(m.object_id, m.message_type, m.data) for m in messages]


@pytest.mark.parametrize(("profile", "user"), [*((profile, "svc-codetwo") for profile in PROFILES),
                                              ("exchange2010", TRIMMED)])
def test_metadata_messages_are_psrpcore_s(profile: str, user: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["*-MailboxPermission", "Get-Mailbox", "Select-Object"]
    cold_or_warm = metadata_wire(profile, user, names)
    warm = metadata_wire(profile, user, names)

    def as_object(info: Any, *args: Any) -> Any:
        return metadata.command_object(info)  # not bytes: the shell has psrpcore's write_output serialise it

    monkeypatch.setattr(psrp, "command_output", as_object)
    by_psrpcore = metadata_wire(profile, user, names)
    assert cold_or_warm == warm == by_psrpcore
    assert len(by_psrpcore) >= 6  # the count, five commands, the pipeline state


def test_a_trimmed_cmdlet_is_its_own_entry() -> None:
    """Two accounts' Add-MailboxPermission differ (RBAC): each gets its own parameters, whichever came first."""
    trimmed = metadata_wire("exchange2019", TRIMMED, ["Add-MailboxPermission"])
    full = metadata_wire("exchange2019", "svc-codetwo", ["Add-MailboxPermission"])
    assert b">AutoMapping<" in full[1][2] and b">AutoMapping<" not in trimmed[1][2]
