"""Attribution of batched output to items, on constructed results: every doubt becomes None (re-run alone).

Also: the wire shortcuts write and read exactly what pypsrp writes and reads.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

from pypsrp.complex_objects import ApartmentState, HostInfo, Pipeline, RemoteStreamOptions
from pypsrp.messages import CreatePipeline
from pypsrp.powershell import PowerShell
from pypsrp.serializer import Serializer

from provisioner.executors import wire
from provisioner.executors.batch import Origin, Raw, attribute_reads, attribute_uniform, attribute_writes, locate
from provisioner.model import AccessState, ErrorInfo, Identity, ItemState, PlanItem, Result, Trustee
from provisioner.steps import StepOptions, grant, revoke
from tests.pypsrp_values import plain

T = Trustee(Identity("svc-codetwo@contoso.com"))
MAILBOXES = [Identity("alice"), Identity("bob"), Identity("carol")]
NOT_FOUND = "ManagementObjectNotFoundException"


def mailbox() -> Any:
    return SimpleNamespace(types=["Microsoft.Exchange.Data.Directory.Management.Mailbox", "System.Object"],
                           adapted_properties={"Identity": "x"}, extended_properties={})


def ace(*, deny: bool = False, inherited: bool = False, on: str = "contoso.com/Users/X") -> Any:
    return SimpleNamespace(types=["Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject"],
                           adapted_properties={"AccessRights": ["FullAccess"], "Deny": deny, "IsInherited": inherited,
                                               "Identity": on},
                           extended_properties={})


def error(command: str, identity: str | None, *, user: str | None = None, target: str | None = None,
          reason: str = NOT_FOUND) -> tuple[ErrorInfo, Origin]:
    info = ErrorInfo(f"{identity} not found", reason=reason, target=target or identity or "")
    return info, Origin(command, identity, user, target if target is not None else identity or "")


def states(observations: list[Any]) -> list[str | None]:
    return [None if o is None else (o.state.value if o.error is None else o.error.reason) for o in observations]


# ------------------------------------------------------------------------------------------------ reads
def test_segments_after_each_mailbox_object_are_that_mailboxes_entries() -> None:
    raw = Raw(output=[mailbox(), ace(), mailbox(), mailbox(), ace(deny=True), ace()])
    assert states(attribute_reads(MAILBOXES, T, raw)) == ["present", "absent", "denied"]


def test_a_missing_mailbox_fails_both_reads_and_takes_no_segment() -> None:
    raw = Raw(output=[mailbox(), ace(), mailbox()],
              errors=[error("Get-Mailbox", "bob"), error("Get-MailboxPermission", "bob", user=T.identity.value)])
    assert states(attribute_reads(MAILBOXES, T, raw)) == ["present", NOT_FOUND, "absent"]


def test_target_only_errors_are_attributed_when_they_name_one_mailbox() -> None:
    raw = Raw(output=[mailbox(), mailbox()],
              errors=[(ErrorInfo("x", reason=NOT_FOUND, target="BOB"), Origin("Get-Mailbox", None, None, "BOB")),
                      (ErrorInfo("x", reason=NOT_FOUND, target="bob"), Origin("Get-MailboxPermission", None, None,
                                                                              "bob"))])
    assert states(attribute_reads(MAILBOXES, T, raw)) == ["absent", NOT_FOUND, "absent"]


def test_an_unknown_trustee_error_without_bound_parameters_is_not_guessed() -> None:
    raw = Raw(output=[mailbox(), mailbox(), mailbox()],
              errors=[error("Get-MailboxPermission", None, target=T.identity.value)] * 3)
    assert attribute_reads(MAILBOXES, T, raw) == [None, None, None]
    with_bound = Raw(output=raw.output, errors=[error("Get-MailboxPermission", m.value, user=T.identity.value,
                                                      target=T.identity.value) for m in MAILBOXES])
    assert states(attribute_reads(MAILBOXES, T, with_bound)) == [NOT_FOUND] * 3


def test_count_mismatch_unexpected_objects_and_orphan_entries_resolve_nothing() -> None:
    extra = Raw(output=[mailbox(), mailbox(), mailbox(), mailbox()])
    stray = Raw(output=[ace(), mailbox(), mailbox(), mailbox()])
    odd = Raw(output=[mailbox(), SimpleNamespace(types=["System.String"], adapted_properties={}), mailbox(),
                      mailbox()])
    for raw in (extra, stray, odd):
        assert attribute_reads(MAILBOXES, T, raw) == [None, None, None]


def test_lookup_failed_but_read_did_not_fail_the_same_way() -> None:
    silent = Raw(output=[mailbox(), ace(), mailbox()], errors=[error("Get-Mailbox", "bob")])
    other = Raw(output=[mailbox(), ace(), mailbox()],
                errors=[error("Get-Mailbox", "bob"), error("Get-MailboxPermission", "bob", reason="Denied")])
    assert attribute_reads(MAILBOXES, T, silent) == [None, None, None]
    assert attribute_reads(MAILBOXES, T, other) == [None, None, None]


def test_terminating_failure_keeps_only_items_whose_statements_certainly_finished() -> None:
    failure = (ErrorInfo("quota", reason="PSRemotingTransportException"), Origin(target="lab-admin"))
    # alice complete (bob's Mailbox object followed), bob's read may have been cut short
    raw = Raw(output=[mailbox(), ace(), mailbox()], failure=failure)
    assert states(attribute_reads(MAILBOXES, T, raw)) == ["present", None, None]
    assert attribute_reads(MAILBOXES, T, Raw(output=[mailbox()], failure=failure)) == [None, None, None]


def test_permission_entries_that_cannot_be_read_make_that_item_unreadable() -> None:
    broken = SimpleNamespace(types=["X.MailboxAcePresentationObject"], adapted_properties={"Deny": False},
                             extended_properties={})
    observations = attribute_reads(MAILBOXES[:2], T, Raw(output=[mailbox(), broken, mailbox()]))
    assert observations[0] is not None and observations[0].state is AccessState.UNKNOWN
    assert observations[1] is not None and observations[1].state is AccessState.ABSENT


# ------------------------------------------------------------------------------------------------ undelimited reads
def uniform(raw: Raw) -> list[str | None] | None:
    found = attribute_uniform(MAILBOXES, T, raw)
    return None if found is None else states(found)


def test_no_entries_at_all_means_every_readable_item_is_absent() -> None:
    missing = error("Get-MailboxPermission", "bob", user=T.identity.value)
    assert uniform(Raw()) == ["absent"] * 3
    assert uniform(Raw(errors=[missing])) == ["absent", NOT_FOUND, "absent"]


def test_one_run_per_readable_item_maps_in_order() -> None:
    raw = Raw(output=[ace(on="A"), ace(on="A", deny=True), ace(on="C")],
              errors=[error("Get-MailboxPermission", "bob", user=T.identity.value)])
    assert uniform(raw) == ["denied", NOT_FOUND, "present"]
    assert uniform(Raw(output=[ace(on="A"), ace(on="B", inherited=True), ace(on="C")])) == ["present"] * 3


def test_mixed_batches_and_doubtful_records_need_delimiters() -> None:
    assert uniform(Raw(output=[ace(on="A"), ace(on="C")])) is None  # which one is absent? unknown
    assert uniform(Raw(output=[ace(on="A"), ace(on="A"), ace(on="A")])) is None  # one run, three items
    no_identity = SimpleNamespace(types=["X.MailboxAcePresentationObject"], adapted_properties={"Deny": False},
                                  extended_properties={})
    assert uniform(Raw(output=[no_identity])) is None
    assert uniform(Raw(errors=[error("Get-MailboxPermission", "bob", reason="Denied")])) is None
    assert uniform(Raw(errors=[error("Get-MailboxPermission", None, target="?")])) is None
    failure = (ErrorInfo("quota"), Origin())
    assert uniform(Raw(failure=failure)) is None


# ------------------------------------------------------------------------------------------------ writes
STEPS = [grant(PlanItem(m, T, ItemState.TO_ADD), StepOptions()) for m in MAILBOXES]
REMOVALS = [revoke(PlanItem(m, T, ItemState.TO_REMOVE), StepOptions()) for m in MAILBOXES]


def results(outcomes: list[Any]) -> list[str | None]:
    return [None if o is None else o.result.value for o in outcomes]


def test_writes_completed_errors_decide() -> None:
    raw = Raw(output=[ace(), ace()], errors=[error("Add-MailboxPermission", "bob", user=T.identity.value)])
    assert results(attribute_writes(STEPS, raw)) == ["granted", "failed", "granted"]
    assert results(attribute_writes(REMOVALS, Raw())) == ["removed"] * 3


def test_writes_with_an_unattributable_error_or_a_wrong_count_are_re_sent() -> None:
    anonymous = Raw(output=[ace(), ace()], errors=[error("Add-MailboxPermission", None, target="?")])
    assert results(attribute_writes(STEPS, anonymous)) == [None, None, None]
    short = Raw(output=[ace()], errors=[error("Add-MailboxPermission", "bob")])
    assert results(attribute_writes(STEPS, short)) == [None, "failed", None]
    assert results(attribute_writes(REMOVALS, Raw(output=[ace()]))) == [None, None, None]


def test_writes_cut_by_an_unattributable_failure_keep_the_finished_prefix() -> None:
    failure = (ErrorInfo("quota", reason="PSRemotingTransportException"), Origin(target="lab-admin"))
    assert results(attribute_writes(STEPS, Raw(output=[ace(), ace()], failure=failure))) == ["granted", "granted",
                                                                                              None]
    # after an item with an error, nothing is assumed: its statement might have written output too
    raw = Raw(output=[ace()], errors=[error("Add-MailboxPermission", "alice")], failure=failure)
    assert results(attribute_writes(STEPS, raw)) == ["failed", None, None]
    assert results(attribute_writes(REMOVALS, Raw(failure=failure))) == [None, None, None]


def test_writes_cut_by_a_failure_of_a_known_item() -> None:
    failure = (ErrorInfo("prompt", reason="HostException"), Origin("Add-MailboxPermission", "bob", None, ""))
    outcomes = attribute_writes(STEPS, Raw(output=[ace()], failure=failure))
    assert results(outcomes) == ["granted", "failed", None]
    assert outcomes[1] is not None and outcomes[1].error is not None and outcomes[1].error.reason == "HostException"


def test_warnings_go_to_their_item_or_to_every_item_of_the_batch() -> None:
    raw = Raw(output=[ace(), ace(), ace()], warnings=[("mine", Origin("Add-MailboxPermission", "carol", None, "")),
                                                      ("shared", Origin())])
    outcomes = attribute_writes(STEPS, raw)
    assert [o.warnings for o in outcomes if o is not None] == [("shared",), ("shared",), ("mine", "shared")]
    assert all(o is not None and o.result is Result.GRANTED for o in outcomes)


def test_locate_refuses_the_trustee_and_unknown_names() -> None:
    positions = {"alice": 0, "bob": 1}
    assert locate(Origin(target="Alice"), positions, T.identity) == 0
    assert locate(Origin(target=T.identity.value), positions, T.identity) is None
    assert locate(Origin(identity="bob", user="someone.else"), positions, T.identity) is None
    assert locate(Origin(identity="nobody"), positions, T.identity) is None


# ------------------------------------------------------------------------------------------------ wire
class _Pool:
    protocol_version = "2.3"
    host = None
    apartment_state = 0


def _message(count: int, value: str) -> CreatePipeline:
    ps = PowerShell.__new__(PowerShell)
    ps.commands = []
    ps.runspace_pool = _Pool()  # type: ignore[assignment]
    for index in range(count):
        ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", f"{value}{index}").add_statement()
        ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", value).add_parameter("User", "u")
        ps.add_parameter("AccessRights", ["FullAccess"]).add_parameter("AutoMapping", index % 2 == 0)
        ps.add_parameter("Confirm").add_statement()
    wire.share_commands(ps)
    pipeline = Pipeline(is_nested=False, cmds=ps.commands, history=None, redirect_err_to_out=False)
    return CreatePipeline(True, ApartmentState(value=0), RemoteStreamOptions(value=15), False, HostInfo(host=None),
                          pipeline, False)


def test_create_pipeline_text_is_byte_identical_to_pypsrp() -> None:
    for count, value in ((1, "plain"), (7, "a<&b>'\"_x0041_\u0001\U0001f600 "), (30, "user")):
        message = _message(count, value)
        element = Serializer().serialize(message)
        assert element is not None
        expected = ET.tostring(element, encoding="utf-8", method="xml")
        assert wire.LeafFastSerializer().serialize(message) == expected


OUTPUT = (
    '<Obj RefId="0"><TN RefId="0"><T>Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject</T>'
    '<T>System.Object</T></TN><ToString>x_x000A_y</ToString><Props><Obj N="AccessRights" RefId="1"><TN RefId="1">'
    '<T>Microsoft.Exchange.Management.RecipientTasks.MailboxRights[]</T><T>System.Array</T><T>System.Object</T></TN>'
    '<LST><Obj RefId="2"><TN RefId="2"><T>Microsoft.Exchange.Management.RecipientTasks.MailboxRights</T>'
    '<T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>FullAccess</ToString><I32>1</I32>'
    '</Obj></LST></Obj><B N="IsInherited">false</B><Obj N="Deny" RefId="3"><TN RefId="3">'
    '<T>System.Management.Automation.SwitchParameter</T><T>System.ValueType</T><T>System.Object</T></TN>'
    '<ToString>False</ToString><Props><B N="IsPresent">false</B></Props></Obj><S N="User">CONTOSO\\svc</S>'
    '<Nil N="Nothing" /><I64 N="Big">5</I64><Ref N="Again" RefId="2" /><Obj N="Inheritance" RefId="4"><TN RefId="4">'
    '<T>System.DirectoryServices.ActiveDirectorySecurityInheritance</T><T>System.Enum</T><T>System.ValueType</T>'
    '<T>System.Object</T></TN><ToString>All</ToString><I32>1</I32></Obj></Props><MS><S N="PSComputerName">ex</S>'
    '</MS></Obj>'
)


def test_output_objects_read_like_pypsrp_reads_them() -> None:
    assert plain(wire.LeafFastSerializer().deserialize(OUTPUT)) == plain(Serializer().deserialize(OUTPUT))
    switch_first = OUTPUT.replace("<T>System.Management.Automation.SwitchParameter</T>", "")
    assert plain(wire.LeafFastSerializer().deserialize(switch_first)) == plain(Serializer().deserialize(switch_first))
