"""Pipeline shapes for many (mailbox, trustee) items, and the exact attribution of what comes back.

Exchange pays per cmdlet invocation (proxy function, RBAC, parameter binding, AD session) far more than per
pipeline record, so the cheapest exact shape is one invocation over many records: the identities as pipeline input
to ``Get-Mailbox`` (Identity binds ByValue), piped into the permission cmdlet (Identity binds ByPropertyName from
the Mailbox objects) — the expert admin's one-liner, one pipeline per trustee and batch::

    ids | Get-Mailbox | Get-MailboxPermission -User T
    ids | Get-Mailbox | Add-MailboxPermission -User T -AccessRights FullAccess -InheritanceType All -AutoMapping:$false
    ids | Get-Mailbox | Remove-MailboxPermission -User T -AccessRights FullAccess -InheritanceType All -Confirm:$false

It is one statement, so PowerShell 2.0 (protocol 2.1, Exchange 2010) runs it too. Attribution relies on:

* records are processed in input order and each command's output follows that order (PowerShell pipeline
  semantics); a failed lookup outputs nothing and its non-terminating error names the input (TargetObject);
* every ACE object names the mailbox it belongs to (``Identity``, server-written) [doc]; Identity values are only
  compared with other server-written values (of ACEs and Mailbox objects), never with inputs or display names;
* a successful ``Add-MailboxPermission -AccessRights FullAccess`` outputs one ACE object, ``Remove-`` none [code].

Reads: when the ACE objects form no run (nothing present: a first grant) or exactly one run of equal Identity per
readable item (everything present: a no-op re-apply), input order decides. Otherwise the readable inputs are
looked up once (``ids | Get-Mailbox``, Mailbox objects in input order) and each ACE goes to the input whose mailbox
has the same Identity. Writes: failed lookups fail their item; an Add batch whose ACE objects match its items
one for one is done; anything not accounted for (a Remove batch, which outputs nothing, an error that names no
input, a terminating failure) is confirmed by a read before any item is reported done (:class:`Pending`).

Reads are projected where the session has Select-Object with -Property (Exchange keeps it public; the command
metadata says so): ``... | Get-MailboxPermission -User T | Select-Object -Property Identity, AccessRights,
IsInherited, Deny`` and ``ids | Get-Mailbox | Select-Object -Property Identity``. The server then sends property
bags with only what the tool reads, the same values (an ADObjectId stays an object: note properties are written at
the object's own depth), and attribution is unchanged: the keys of both sides are projected alike. A refusal
(CommandNotFoundException, NamedParameterNotFound naming Select-Object) is remembered for the session and the read
sent again unprojected. It is still one statement (protocol 2.1 runs it). A grant's returned ACE objects are
projected to the entry alone (:data:`GRANT_PROPERTIES`: all that proves a grant, and half the bytes: the
mailbox's Identity, an ADObjectId, is most of an ACE and nothing reads it there); PowerShell resolves every command
of a pipeline and binds its parameters before any runs, so a refused projection wrote nothing (and a grant is
idempotent anyway).

Piped writes are exact only when AutoMapping is off: with pipeline input, Add-/Remove-MailboxPermission apply
AutoMapping (msExchDelegateListLink) once, for the last record only (decompiled 2013 SetMailboxPermissionTaskBase).
Steps with AutoMapping on therefore run one invocation each: several statements per pipeline where the server runs
them (protocol >= 2.2), else one pipeline per step. Identities with ``*`` (Get-Mailbox would expand them) and
single items always take the one-step pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.domain.model import ErrorInfo, Identity, Observation, Outcome, Result, Trustee
from provisioner.powershell import steps as step_builders
from provisioner.powershell.literals import Bare
from provisioner.powershell.steps import Command, Parameter, Step, StepAction, StepOptions
from provisioner.transport import records
from provisioner.transport.facts import SELECT_OBJECT
from provisioner.transport.runner import Origin, Pipeline, Raw, Runner

GET_MAILBOX = "get-mailbox"
MAILBOX_TYPE_SUFFIX = ".Mailbox"
Keys = Callable[[Sequence[Identity]], "dict[Identity, str | ErrorInfo] | None"]

#: What the tool reads of each object, the one list per kind: an ACE's mailbox (Identity) and entry
#: (:func:`records.permission_entry`); a looked-up Mailbox's Identity (:func:`identity_key`).
ACE_PROPERTIES = ("Identity", "AccessRights", "IsInherited", "Deny")
KEY_PROPERTIES = ("Identity",)
#: What a grant's returned ACE object is read for: its entry (:func:`proves_grant`), never its mailbox.
GRANT_PROPERTIES = ("AccessRights", "IsInherited", "Deny")
#: PowerShell's refusals of a command or parameter the session lacks (FullyQualifiedErrorId, before the comma).
REFUSALS = frozenset({"CommandNotFoundException", "NamedParameterNotFound"})


# ---------------------------------------------------------------------------------------------- projection
def select(properties: Sequence[str]) -> Command:
    """``Select-Object -Property A, B``: the server sends property bags with only those properties."""
    return Command(Bare(SELECT_OBJECT), (Parameter(Bare("Property"), tuple(Bare(name) for name in properties)),))


def refused_projection(raw: Raw) -> bool:
    """The pipeline failed because the session has no Select-Object (or no -Property on it): PowerShell resolves
    every command and binds its parameters before any runs, so nothing ran. Judged by the FullyQualifiedErrorId
    and what the error names (its command or target), never by its text."""
    if raw.failure is None:
        return False
    error, origin = raw.failure
    names = {origin.command.casefold(), error.target.strip().casefold()}
    return error.fq_error_id.split(",", 1)[0].strip() in REFUSALS and SELECT_OBJECT.casefold() in names


def projected(runner: Runner, chain: Sequence[Command], properties: Sequence[str],
              input: Sequence[str] | None = None) -> Raw:
    """``chain | Select-Object -Property properties`` where the session has it, else ``chain``: the objects carry
    the same values either way (a refusal is remembered for the session, and the read sent again unprojected)."""
    facts = runner.facts
    if facts.projects:
        raw = runner.run(Pipeline.of(*chain, select(properties), input=input))
        if not refused_projection(raw):
            return raw
        facts.projection.refused = raw.failure
    return runner.run(Pipeline.of(*chain, input=input))


def projected_each(runner: Runner, chains: Sequence[Sequence[Command]], properties: Sequence[str]) -> list[Raw]:
    """:func:`projected` for independent one-chain pipelines, sent together where the runner can (:func:`run_each`)."""
    if not runner.facts.projects:
        return run_each(runner, [Pipeline.of(*chain) for chain in chains])
    raws = run_each(runner, [Pipeline.of(*chain, select(properties)) for chain in chains])
    again = [index for index, raw in enumerate(raws) if refused_projection(raw)]
    if again:
        runner.facts.projection.refused = raws[again[0]].failure
        for index, raw in zip(again, run_each(runner, [Pipeline.of(*chains[i]) for i in again]), strict=True):
            raws[index] = raw
    return raws


# ---------------------------------------------------------------------------------------------- object helpers
def is_ace(obj: Any) -> bool:
    return any(name.endswith(records.ACE_TYPE_SUFFIX) for name in records.type_names(obj))


def proves_grant(obj: Any) -> bool:
    """An object a grant returned that proves it: an ACE that is an explicit Allow with FullAccess (an object of
    the right type with other content, or none at all, is confirmed by a read instead)."""
    entry = records.permission_entry(obj) if is_ace(obj) else None
    return entry is not None and entry.grants_full_access and not entry.inherited


def is_mailbox(obj: Any) -> bool:
    return any(name.endswith(MAILBOX_TYPE_SUFFIX) for name in records.type_names(obj))


def identity_key(obj: Any) -> str:
    """The server-written Identity of an ACE or Mailbox object as a comparable key ('' when it has none).

    An ADObjectId that crosses as a property bag is keyed by its ObjectGuid (else its DN); one that crosses as
    text by that text. ACEs and Mailbox objects come from the same server, so they use the same form.
    """
    value = records.properties(obj).get("Identity")
    if value is None:
        return ""
    props = records.properties(value) if not isinstance(value, str) else {}
    for name in ("ObjectGuid", "DistinguishedName"):
        text = records.text(props.get(name)).strip()
        if text:
            return f"{name}:{text.casefold()}"
    return f"text:{records.text(value)}"


def observation(aces: Sequence[Any]) -> Observation:
    entries = []
    for obj in aces:
        entry = records.permission_entry(obj)
        if entry is None:
            types = ", ".join(records.type_names(obj)) or type(obj).__name__
            return Observation.unreadable(ErrorInfo(f"unexpected output object ({types})", category="InvalidResult"))
        entries.append(entry)
    return Observation.from_entries(entries)


def pipeable(identity: Identity) -> bool:
    return "*" not in identity.value


def positions(mailboxes: Sequence[Identity]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, mailbox in enumerate(mailboxes):
        if mailbox.key in found:
            raise ValueError(f"mailbox {mailbox} twice in one batch")
        found[mailbox.key] = index
    return found


@dataclass
class Located:
    """A piped pipeline's errors sorted: failed lookups per input, errors naming the trustee, the rest."""

    lookups: dict[int, ErrorInfo]
    trustee_errors: list[ErrorInfo]
    other: list[ErrorInfo]


def locate_errors(raw: Raw, mailboxes: Sequence[Identity], trustee: Identity) -> Located:
    where = positions(mailboxes)
    located = Located({}, [], [])
    for error, source in raw.errors:
        target = source.target.casefold()
        position = where.get(target) if source.command.casefold() == GET_MAILBOX else None
        if position is not None and position not in located.lookups:
            located.lookups[position] = error
        elif target and target == trustee.key and source.command.casefold() != GET_MAILBOX:
            located.trustee_errors.append(error)
        else:
            located.other.append(error)
    return located


# ---------------------------------------------------------------------------------------------- reads
def run_each(runner: Runner, pipelines: Sequence[Pipeline]) -> list[Raw]:
    """Independent pipelines, each with its own Raw: ``runner.run_each`` where the runner has it (a REST backend
    sends them together, e.g. as ``$batch`` requests), else one ``run`` after the other."""
    many = getattr(runner, "run_each", None)
    if many is None:
        return [runner.run(pipeline) for pipeline in pipelines]
    raws: list[Raw] = many(pipelines)
    if len(raws) != len(pipelines):
        raise RuntimeError(f"run_each gave {len(raws)} results for {len(pipelines)} pipelines")
    return raws


def read_result(raw: Raw) -> Observation:
    """The observation of one ``Get-MailboxPermission -Identity M -User T``: its own errors decide."""
    error = raw.first_error
    if error is not None:
        return Observation.unreadable(error)
    return observation(raw.output)


def read_each(runner: Runner, mailboxes: Sequence[Identity], trustee: Trustee,
              options: StepOptions) -> list[Observation]:
    """One ``Get-MailboxPermission -Identity M -User T`` per mailbox, each judged on its own result."""
    chains = [[step_builders.read(mailbox, trustee, options).command] for mailbox in mailboxes]
    return [read_result(raw) for raw in projected_each(runner, chains, ACE_PROPERTIES)]


def piped_read(runner: Runner, mailboxes: Sequence[Identity], trustee: Trustee, options: StepOptions) -> Raw:
    read = step_builders.read(mailboxes[0], trustee, options)
    return projected(runner, [step_builders.lookup(options), step_builders.piped(read)], ACE_PROPERTIES,
                     input=[mailbox.value for mailbox in mailboxes])


def _runs(aces: Sequence[Any]) -> list[list[Any]] | None:
    runs: list[list[Any]] = []
    previous: str | None = None
    for obj in aces:
        current = identity_key(obj)
        if not current:
            return None
        if current != previous:
            runs.append([])
            previous = current
        runs[-1].append(obj)
    return runs


def attribute_read(
    mailboxes: Sequence[Identity], trustee: Trustee, raw: Raw, keys: Keys
) -> list[Observation | None]:
    """One observation per input of a piped read; None: read that one alone. ``keys`` looks inputs up (by Identity
    key) when input order alone cannot decide."""
    count = len(mailboxes)
    unresolved: list[Observation | None] = [None] * count
    if raw.failure is not None:
        error = raw.failure[0]
        # throttled or cut off: every item unreadable for now (the engine retries); otherwise read them alone
        return [Observation.unreadable(error) for _ in mailboxes] if error.transient else unresolved
    located = locate_errors(raw, mailboxes, trustee.identity)
    if located.other or any(not is_ace(obj) for obj in raw.output):
        return unresolved
    readable = [index for index in range(count) if index not in located.lookups]
    observations: list[Observation | None] = list(unresolved)
    for index, error in located.lookups.items():
        observations[index] = Observation.unreadable(error)
    if located.trustee_errors:
        # every Mailbox record reached the permission cmdlet and failed the same way (an unknown trustee)
        if raw.output or len(located.trustee_errors) != len(readable):
            return unresolved
        for index in readable:
            observations[index] = Observation.unreadable(located.trustee_errors[0])
        return observations
    runs = _runs(raw.output)
    if runs is None:
        return unresolved
    if not runs or len(runs) == len(readable):
        for position, index in enumerate(readable):
            observations[index] = observation(runs[position]) if runs else Observation()
        return observations
    return _by_key([mailboxes[index] for index in readable], readable, raw.output, keys, observations)


def _by_key(
    readable: Sequence[Identity], indexes: Sequence[int], aces: Sequence[Any], keys: Keys,
    observations: list[Observation | None],
) -> list[Observation | None]:
    found = keys(readable)
    if found is None:
        return [None] * len(observations)
    grouped: dict[str, list[Any]] = {}
    for obj in aces:
        grouped.setdefault(identity_key(obj), []).append(obj)
    wanted = {value for value in found.values() if isinstance(value, str)}
    if any(ace_key not in wanted for ace_key in grouped):
        return [None] * len(observations)  # an ACE of a mailbox none of the inputs is: not certain
    for mailbox, index in zip(readable, indexes, strict=True):
        value = found[mailbox]
        observations[index] = Observation.unreadable(value) if isinstance(value, ErrorInfo) \
            else observation(grouped.get(value, []))
    return observations


def lookup_keys(
    runner: Runner, mailboxes: Sequence[Identity], options: StepOptions
) -> dict[Identity, str | ErrorInfo] | None:
    """``ids | Get-Mailbox``: each input's mailbox Identity key, or its lookup error; None when not certain."""
    raw = projected(runner, [step_builders.lookup(options)], KEY_PROPERTIES,
                    input=[mailbox.value for mailbox in mailboxes])
    if raw.failure is not None:
        return None
    located = locate_errors(raw, mailboxes, Identity("-"))
    if located.other or located.trustee_errors:
        return None
    remaining = [index for index in range(len(mailboxes)) if index not in located.lookups]
    if len(raw.output) != len(remaining) or not all(is_mailbox(obj) for obj in raw.output):
        return None
    found: dict[Identity, str | ErrorInfo] = {mailboxes[index]: error for index, error in located.lookups.items()}
    for index, obj in zip(remaining, raw.output, strict=True):
        key = identity_key(obj)
        if not key:
            return None
        found[mailboxes[index]] = key
    return found


# ---------------------------------------------------------------------------------------------- writes
@dataclass(frozen=True)
class Pending:
    """A write that was sent but whose effect this batch's output cannot prove: confirmed by a read. ``error``:
    an error of the batch that may explain a failure (it named no input)."""

    step: Step
    error: ErrorInfo | None = None
    warnings: tuple[str, ...] = ()


Written = Outcome | Pending


def done(step: Step, warnings: Sequence[str] = ()) -> Outcome:
    result = Result.REMOVED if step.action is StepAction.REVOKE else Result.GRANTED
    return Outcome(step.mailbox, step.trustee, result, "", None, tuple(warnings))


def failed(step: Step, error: ErrorInfo, warnings: Sequence[str] = ()) -> Outcome:
    return Outcome(step.mailbox, step.trustee, Result.FAILED, error.message, error, tuple(warnings))


def _returned(step: Step) -> tuple[str, ...]:
    """What a write's output is read for: a grant's ACE object (its entry proves it); a Remove outputs nothing."""
    return GRANT_PROPERTIES if step.action is StepAction.GRANT else ()


def write_one(runner: Runner, step: Step) -> Written:
    """One step alone: its own errors decide; a Remove (no output) is confirmed by a read."""
    properties = _returned(step)
    raw = projected(runner, [step.command], properties) if properties else runner.run(Pipeline.of(step.command))
    return write_result(step, raw)


def write_each(runner: Runner, batch: Sequence[Step]) -> list[Written]:
    """Each step as its own pipeline (sent together where the runner can), each judged on its own result."""
    properties = _returned(batch[0])
    if properties and all(_returned(step) == properties for step in batch):
        raws = projected_each(runner, [[step.command] for step in batch], properties)
    else:
        raws = run_each(runner, [Pipeline.of(step.command) for step in batch])
    return [write_result(step, raw) for step, raw in zip(batch, raws, strict=True)]


def write_result(step: Step, raw: Raw) -> Written:
    """A one-step pipeline's result: an error fails it; one ACE object proves a grant; anything else (a Remove,
    which outputs nothing) is confirmed by a read."""
    warnings = [text for text, _ in raw.warnings]
    error = raw.first_error
    if error is not None:
        return failed(step, error, warnings)
    if step.action is StepAction.REVOKE or len(raw.output) != 1 or not proves_grant(raw.output[0]):
        return Pending(step, None, tuple(warnings))
    return done(step, warnings)


def piped_write(runner: Runner, batch: Sequence[Step], options: StepOptions) -> list[Written]:
    """``ids | Get-Mailbox | <write> -User T ...`` for steps of one trustee, cmdlet and parameters (AutoMapping off)."""
    mailboxes = [step.mailbox for step in batch]
    chain = [step_builders.lookup(options), step_builders.piped(batch[0])]
    inputs = [mailbox.value for mailbox in mailboxes]
    properties = _returned(batch[0])
    raw = projected(runner, chain, properties, input=inputs) if properties else \
        runner.run(Pipeline.of(*chain, input=inputs))
    warnings = tuple(text for text, _ in raw.warnings)
    if raw.failure is not None:
        error = raw.failure[0]
        if error.transient:  # throttled or cut off: the engine retries the batch (grant and revoke are idempotent)
            return [failed(step, error, warnings) for step in batch]
        return [Pending(step, error, warnings) for step in batch]
    located = locate_errors(raw, mailboxes, batch[0].trustee.identity)
    stray: list[ErrorInfo | None] = [*located.other, *located.trustee_errors] or [None]
    remaining = [index for index in range(len(batch)) if index not in located.lookups]
    aces = [obj for obj in raw.output if proves_grant(obj)]
    accounted = (
        batch[0].action is StepAction.GRANT and not located.other and not located.trustee_errors
        and len(aces) == len(raw.output) == len(remaining)
    )
    results: list[Written] = []
    for index, step in enumerate(batch):
        if index in located.lookups:
            results.append(failed(step, located.lookups[index], warnings))
        elif accounted:
            results.append(done(step, warnings))
        else:
            results.append(Pending(step, stray[0], warnings))
    return results


def statement_write(runner: Runner, batch: Sequence[Step]) -> list[Written]:
    """One statement per step (protocol >= 2.2 only): each is its own invocation, so AutoMapping is exact."""
    raw = runner.run(Pipeline(tuple((step.command,) for step in batch)))
    return [outcome if outcome is not None else Pending(step)
            for step, outcome in zip(batch, attribute_statements(batch, raw), strict=True)]


def _locate_bound(where: Origin, mailboxes: Mapping[str, int], trustee: Identity) -> int | None:
    if where.identity is not None:
        if where.user is not None and where.user.casefold() != trustee.key:
            return None
        return mailboxes.get(where.identity.casefold())
    target = where.target.casefold()
    if not target or target == trustee.key:
        return None
    return mailboxes.get(target)


def attribute_statements(batch: Sequence[Step], raw: Raw) -> list[Outcome | None]:
    """Outcomes of a statement batch of one trustee and cmdlet; None: not certain (confirmed by a read).

    Errors are placed by their bound -Identity (InvocationInfo) or an exact TargetObject; statements run in
    order, so with a terminating failure only the items before the failing one finished. Add outputs one ACE
    per success; a Remove batch (no output) is never reported done from here.
    """
    count = len(batch)
    trustee = batch[0].trustee.identity
    where = positions([step.mailbox for step in batch])
    errors: dict[int, list[ErrorInfo]] = {}
    unattributed = False
    for error, source in raw.errors:
        position = _locate_bound(source, where, trustee)
        if position is None:
            unattributed = True
        else:
            errors.setdefault(position, []).append(error)
    failed_at: int | None = None
    if raw.failure is not None:
        failed_at = _locate_bound(raw.failure[1], where, trustee)
        if failed_at is not None:
            errors.setdefault(failed_at, []).append(raw.failure[0])
    warnings = [text for text, _ in raw.warnings]
    outcomes: list[Outcome | None] = [None] * count
    for index, found in errors.items():
        outcomes[index] = failed(batch[index], found[0], warnings)
    aces = sum(1 for obj in raw.output if is_ace(obj))
    if batch[0].action is StepAction.REVOKE or unattributed or aces != len(raw.output):
        return outcomes
    if raw.failure is None:
        finished = [index for index in range(count) if index not in errors]
        if aces != len(finished):
            return outcomes
    elif failed_at is not None:
        finished = [index for index in range(failed_at) if index not in errors]
        if any(index in errors for index in range(failed_at + 1, count)) or aces not in (len(finished),
                                                                                          len(finished) + 1):
            return outcomes
    else:
        return outcomes
    for index in finished:
        outcomes[index] = done(batch[index], warnings)
    return outcomes


def chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def signature(step: Step) -> tuple[Any, ...]:
    return (step.trustee.identity.key, str(step.cmdlet),
            tuple((str(p.name), p.value) for p in step.parameters if p.name != "Identity"))


def pipe_safe(step: Step) -> bool:
    """Piped writes apply AutoMapping for the last record only: exact only when it is off."""
    if not pipeable(step.mailbox):
        return False
    if step.action is StepAction.GRANT:
        automapping = step.command.parameter("AutoMapping")
        return automapping is None or automapping.value is False
    return not step.trustee.automapping
