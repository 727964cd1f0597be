"""Attribution of piped pipelines on constructed results: every item gets its own answer, or None (not certain)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.domain.model import ErrorInfo, Identity, ItemState, Observation, PlanItem, Result, Trustee
from provisioner.engine import shapes
from provisioner.powershell.steps import StepOptions, grant, revoke
from provisioner.transport.runner import Origin, Pipeline, Raw
from tests.fake_runner import Obj

T = Trustee(Identity("svc@contoso.com"))
ACE = ["Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject", "System.Object"]
MAILBOX = ["Microsoft.Exchange.Data.Directory.Management.Mailbox", "System.Object"]
NOT_FOUND = ErrorInfo("not found", reason="ManagementObjectNotFoundException", category="NotSpecified")


def adid(guid: str) -> Obj:
    return Obj(["Microsoft.Exchange.Data.Directory.ADObjectId"], {"ObjectGuid": guid, "DistinguishedName": ""}, guid)


def ace(guid: str, *, deny: bool = False, inherited: bool = False) -> Obj:
    return Obj(ACE, {"Identity": adid(guid), "AccessRights": ["FullAccess"], "Deny": deny, "IsInherited": inherited,
                     "User": "CONTOSO\\svc"}, guid)


def mailbox_obj(guid: str) -> Obj:
    return Obj(MAILBOX, {"Identity": adid(guid), "Guid": guid}, guid)


def lookup_error(name: str) -> tuple[ErrorInfo, Origin]:
    return ErrorInfo("not found", "ManagementObjectNotFoundException", "NotSpecified", "x", name), \
        Origin("Get-Mailbox", name, None, name)


def ids(count: int) -> list[Identity]:
    return [Identity(f"m{i}") for i in range(count)]


def never(_: Sequence[Identity]) -> dict[Identity, str | ErrorInfo] | None:
    raise AssertionError("no lookup expected")


@given(st.lists(st.booleans(), min_size=1, max_size=12), st.lists(st.booleans(), min_size=12, max_size=12))
def test_reads_are_exact_for_any_mix_of_present_absent_and_missing(present: list[bool], missing: list[bool]) -> None:
    """Input order decides when it can; otherwise Identity keys do; never a wrong answer."""
    mailboxes = ids(len(present))
    gone = {i for i in range(len(present)) if missing[i]}
    output = [ace(f"g{i}") for i, has in enumerate(present) if has and i not in gone]
    raw = Raw(output=output, errors=[lookup_error(f"m{i}") for i in sorted(gone)])
    lookups: list[int] = []

    def keys(readable: Sequence[Identity]) -> dict[Identity, str | ErrorInfo]:
        lookups.append(len(readable))
        return {m: shapes.identity_key(mailbox_obj("g" + m.value[1:])) for m in readable}

    observations = shapes.attribute_read(mailboxes, T, raw, keys)
    for index, seen in enumerate(observations):
        assert seen is not None
        if index in gone:
            assert seen.error is not None and seen.error.not_found
        else:
            assert seen.explicit_allow is (present[index])
    readable = [i for i in range(len(present)) if i not in gone]
    uniform = all(present[i] for i in readable) or not any(present[i] for i in readable)
    assert (lookups == []) is uniform  # a lookup only when input order cannot decide


def test_an_ace_of_a_mailbox_no_input_resolved_to_is_not_attributed() -> None:
    raw = Raw(output=[ace("g0"), ace("stranger")])
    observations = shapes.attribute_read(ids(3), T, raw, lambda ms: {m: f"ObjectGuid:g{m.value[1:]}" for m in ms})
    assert observations == [None, None, None]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # a terminating, transient failure (throttled): all unreadable for now, retried by the engine
        (Raw(failure=(ErrorInfo("busy", reason="PSRemotingTransportException"), Origin())), "unreadable"),
        # a terminating failure of another kind: read each alone
        (Raw(failure=(ErrorInfo("boom", reason="InvalidOperationException"), Origin())), None),
        # an error that names no input
        (Raw(errors=[(ErrorInfo("odd"), Origin("Get-MailboxPermission", None, None, "?"))]), None),
        # an object that is not an ACE
        (Raw(output=[mailbox_obj("g0")]), None),
    ],
)
def test_reads_that_cannot_be_attributed(raw: Raw, expected: str | None) -> None:
    observations = shapes.attribute_read(ids(2), T, raw, never)
    if expected is None:
        assert observations == [None, None]
    else:
        assert all(seen is not None and seen.error is not None and seen.error.transient for seen in observations)


def test_an_unknown_trustee_fails_every_readable_item_once() -> None:
    trustee_error = (ErrorInfo("user not found", "ManagementObjectNotFoundException"),
                     Origin("Get-MailboxPermission", None, None, "svc@contoso.com"))
    raw = Raw(errors=[lookup_error("m1"), trustee_error, trustee_error])
    observations = shapes.attribute_read(ids(3), T, raw, never)
    assert [o.error.message if o and o.error else None for o in observations] == \
        ["user not found", "not found", "user not found"]
    short = Raw(errors=[trustee_error])  # one error for two records: which one? not certain
    assert shapes.attribute_read(ids(2), T, short, never) == [None, None]


def test_deny_and_inherited_entries_keep_their_meaning() -> None:
    raw = Raw(output=[ace("g0", deny=True), ace("g1", inherited=True)])
    first, second = shapes.attribute_read(ids(2), T, raw, never)
    assert first == Observation(deny=True) and second == Observation(inherited_allow=True)


class Recording:
    """A runner that answers with a prepared Raw and records what it was given."""

    piping = True

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        self.pipelines: list[Pipeline] = []
        from provisioner.transport.facts import ServerFacts

        self.facts = ServerFacts("2.3")

    def run(self, pipeline: Pipeline) -> Raw:
        self.pipelines.append(pipeline)
        return self.raw


def grants(count: int) -> list:  # type: ignore[type-arg]
    return [grant(PlanItem(m, T, ItemState.TO_ADD), StepOptions()) for m in ids(count)]


def test_piped_grant_is_done_only_when_its_aces_match_its_items() -> None:
    runner = Recording(Raw(output=[ace("g0"), ace("g2")], errors=[lookup_error("m1")]))
    written = shapes.piped_write(runner, grants(3), StepOptions())
    assert [w.result if not isinstance(w, shapes.Pending) else "pending" for w in written] == \
        [Result.GRANTED, Result.FAILED, Result.GRANTED]
    pipeline = runner.pipelines[0]
    assert pipeline.input == ("m0", "m1", "m2")
    assert [str(c.cmdlet) for c in pipeline.statements[0]] == ["Get-Mailbox", "Add-MailboxPermission"]
    assert pipeline.statements[0][1].parameter("Identity") is None  # bound from the piped Mailbox objects


def test_piped_writes_not_accounted_for_are_confirmed_by_a_read() -> None:
    short = shapes.piped_write(Recording(Raw(output=[ace("g0")])), grants(2), StepOptions())
    assert all(isinstance(w, shapes.Pending) for w in short)  # one ACE for two items: which one?
    stray = (ErrorInfo("access denied", "ADOperationException"), Origin("Add-MailboxPermission", None, None, ""))
    failed = shapes.piped_write(Recording(Raw(output=[ace("g0")], errors=[stray])), grants(2), StepOptions())
    assert all(isinstance(w, shapes.Pending) and w.error is not None for w in failed)
    removals = [revoke(PlanItem(m, T, ItemState.TO_REMOVE), StepOptions()) for m in ids(2)]
    assert all(isinstance(w, shapes.Pending) for w in shapes.piped_write(Recording(Raw()), removals, StepOptions()))
