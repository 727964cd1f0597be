""":class:`ExoRunner`: the engine's :class:`~provisioner.transport.runner.Runner` over Exchange Online's REST endpoint.

Each command of a :class:`~provisioner.transport.runner.Pipeline` becomes one ``InvokeCommand`` call with the same
cmdlet
and parameters (values as JSON: strings, booleans, token lists; a switch is ``true``). REST has no pipeline, so:

- ``piping`` is False: the engine and shapes never send pipeline input here; reads and writes go one command per
  (mailbox, trustee), and :meth:`ExoRunner.run_each` sends such independent commands together (``$batch``, 10 per
  request) while still giving each its own :class:`~provisioner.transport.runner.Raw`: every reply is matched to its
  request
  by ``id``, so each (mailbox, trustee) is attributed exactly, without relying on output order or Identity values;
- a two-command chain without input (the prune scan, ``Get-Mailbox -ResultSize Unlimited | Get-MailboxPermission
  -User T``) runs the first command, then the second once per object it returned (``-Identity`` = that mailbox's
  Guid), and each ACE object gets the Identity of the mailbox it was read from (Guid and DN), which is what a
  piped ACE object names on-prem;
- output objects are JSON: they are typed by the cmdlet that returned them (Get-/Add-MailboxPermission:
  ``MailboxAcePresentationObject``; Get-Mailbox: ``Mailbox``; Get-DistributionGroupMember: ``ReducedRecipient``),
  so the readers of :mod:`provisioner.transport.records` and :mod:`provisioner.engine.shapes` take them as they are;
- an error reply is the command's error (its origin: the bound -Identity and -User); one that stayed throttled or
  unavailable after the transport's retries is a transient failure, which the engine retries after a backoff.

``facts``: there is no PSRP protocol (statements are never batched: ``runs_statements`` is False) and no
GET_COMMAND_METADATA over REST, so the cmdlets and parameters are a fixed table of what Exchange Online's cmdlets
take (no ``-DomainController``: a run that pins one is refused before anything is sent); ``provisioner check``
probes each cmdlet for this app (an empty 403 means its Exchange role lacks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.domain.model import ErrorInfo
from provisioner.powershell.cmdlets import exo_commands, output_types
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, Value
from provisioner.transport.exo.http import Call, ExoClient, Reply
from provisioner.transport.facts import ServerFacts
from provisioner.transport.runner import NotRunnable, Origin, Pipeline, Raw

OUTPUT_TYPES = output_types()
#: The parameters of Exchange Online's cmdlets that provisioner uses (cloud cmdlet reference): no -DomainController.
EXO_COMMANDS: Mapping[str, frozenset[str]] = exo_commands()
EXO_NOTE = ("Exchange Online REST (InvokeCommand): cmdlets and parameters from provisioner's fixed table (there is "
            "no Get-Command over REST); provisioner check probes each cmdlet for this app")


def exo_facts() -> ServerFacts:
    return ServerFacts("", {}, dict(EXO_COMMANDS))


@dataclass
class ExoObject:
    """An output object of the REST endpoint: its JSON properties, typed by the cmdlet that returned it."""

    types: list[str]
    adapted_properties: dict[str, Any]
    extended_properties: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return str(self.adapted_properties.get("Identity", ""))


def json_value(value: Value) -> Any:
    if value is None:
        return True  # a switch that is present
    if isinstance(value, tuple):
        return [str(token) for token in value]
    if isinstance(value, Bare):
        return str(value)
    return value


def call_of(command: Command) -> Call:
    return Call(str(command.cmdlet), {str(p.name): json_value(p.value) for p in command.parameters})


def _origin(call: Call, target: str = "") -> Origin:
    bound = {name.casefold(): value for name, value in call.parameters.items()}
    identity = bound.get("identity")
    user = bound.get("user")
    return Origin(call.cmdlet, None if identity is None else str(identity), None if user is None else str(user),
                  target or ("" if identity is None else str(identity)))


def raw_of(call: Call, reply: Reply, objects: list[Any] | None = None) -> Raw:
    origin = _origin(call)
    kind = OUTPUT_TYPES.get(call.cmdlet.casefold())
    raw = Raw(output=objects if objects is not None else
              [ExoObject([kind] if kind else [], dict(value)) for value in reply.values])
    raw.warnings = [(text, origin) for text in reply.warnings]
    if reply.error is not None:
        where = _origin(call, reply.error.target)
        if reply.error.transient:
            raw.failure = (reply.error, where)
        else:
            raw.errors = [(reply.error, where)]
    return raw


def _single(pipeline: Pipeline) -> Command | None:
    if pipeline.input is None and len(pipeline.statements) == 1 and len(pipeline.statements[0]) == 1:
        return pipeline.statements[0][0]
    return None


def mailbox_handle(props: Mapping[str, Any]) -> str | None:
    """What a piped Mailbox object is addressed by in the next call: its Guid (unique, never renamed)."""
    for name in ("Guid", "ExternalDirectoryObjectId", "DistinguishedName", "PrimarySmtpAddress", "Identity"):
        value = props.get(name)
        if isinstance(value, str) and value:
            return value
    return None


class ExoRunner:
    """Runs pipelines as InvokeCommand calls (see the module docstring)."""

    piping = False

    def __init__(self, client: ExoClient, facts: ServerFacts | None = None) -> None:
        self.client = client
        self.facts = facts or exo_facts()

    def run(self, pipeline: Pipeline) -> Raw:
        if pipeline.input is not None or len(pipeline.statements) != 1:
            raise NotRunnable("Exchange Online REST runs one command chain per pipeline, without input")
        chain = pipeline.statements[0]
        if len(chain) == 1:
            call = call_of(chain[0])
            return raw_of(call, self.client.invoke(call))
        if len(chain) == 2:
            return self._chained(chain[0], chain[1])
        raise NotRunnable(f"a chain of {len(chain)} commands: Exchange Online REST has no pipeline")

    def run_each(self, pipelines: Sequence[Pipeline]) -> list[Raw]:
        """Independent single-command pipelines, each with its own Raw (sent as $batch requests when enabled)."""
        commands = [_single(pipeline) for pipeline in pipelines]
        if any(command is None for command in commands):
            return [self.run(pipeline) for pipeline in pipelines]
        calls = [call_of(command) for command in commands if command is not None]
        return [raw_of(call, reply) for call, reply in zip(calls, self.client.invoke_many(calls), strict=True)]

    def _chained(self, first: Command, second: Command) -> Raw:
        head = call_of(first)
        found = self.client.invoke(head)
        if found.error is not None:
            return raw_of(head, found)
        template = call_of(second)
        sources: list[Mapping[str, Any]] = []
        calls: list[Call] = []
        for value in found.values:
            handle = mailbox_handle(value)
            if handle is None:
                raw = Raw()
                raw.failure = (ErrorInfo(f"{head.cmdlet} returned an object without Guid or Identity",
                                         category="InvalidResult"), _origin(head))
                return raw
            sources.append(value)
            calls.append(Call(template.cmdlet, {"Identity": handle, **template.parameters}))
        raw = Raw(warnings=[(text, _origin(head)) for text in found.warnings])
        kind = OUTPUT_TYPES.get(template.cmdlet.casefold())
        for source, call, reply in zip(sources, calls, self.client.invoke_many(calls), strict=True):
            identity = {"ObjectGuid": source.get("Guid", ""), "DistinguishedName": source.get("DistinguishedName", ""),
                        "Name": source.get("Identity", "")}
            objects = [ExoObject([kind] if kind else [], {**value, "Identity": identity}) for value in reply.values]
            part = raw_of(call, reply, objects)
            raw.output.extend(part.output)
            raw.errors.extend(part.errors)
            raw.warnings.extend(part.warnings)
            if part.failure is not None and raw.failure is None:
                raw.failure = part.failure
        return raw
