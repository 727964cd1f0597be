"""The fast CLIXML reader (provisioner.executors.wire) against pypsrp 0.9.1 itself, on generated documents.

wire.LeafFastSerializer claims to build exactly the values pypsrp's Serializer builds, or to leave the element to
pypsrp. Hypothesis generates CLIXML objects (generic objects with Props/MS/ToString, lists, Object[] arrays,
dictionaries, enums pypsrp maps to its own classes, Refs to earlier objects, TN and TNRef, escaped strings) and
error-record messages around them; both serializers read each one and the results (or the exception) must agree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pypsrp.complex_objects import ObjectMeta
from pypsrp.messages import ErrorRecordMessage
from pypsrp.serializer import Serializer

from provisioner.executors.wire import LeafFastSerializer
from tests.pypsrp_values import plain

SMA = "System.Management.Automation."
TYPE_LISTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("generic", ("System.Object",)),
    ("generic", ("Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
                 "Microsoft.Exchange.Data.ConfigurableObject", "System.Object")),
    ("generic", (SMA + "PSCustomObject", "System.Object")),
    ("generic", (SMA + "InvocationInfo", "System.Object")),
    ("generic", ()),
    ("list", ("System.Collections.ArrayList", "System.Object")),
    ("list", ("System.Object[]", "System.Array", "System.Object")),
    ("list", ("Deserialized.System.Object[]", "Deserialized.System.Array", "Deserialized.System.Object")),
    ("list", ("Microsoft.Exchange.Management.RecipientTasks.MailboxRights[]", "System.Array", "System.Object")),
    ("list", ("System.Collections.Generic.List`1[[System.Object, mscorlib, Version=4.0.0.0, Culture=neutral, "
              "PublicKeyToken=b77a5c561934e089]]", "System.Object")),
    ("dict", ("System.Collections.Hashtable", "System.Object")),
    ("dict", ("Deserialized.System.Collections.Hashtable", "Deserialized.System.Object")),
    ("dict", (SMA + "PSBoundParametersDictionary", "System.Collections.Generic.Dictionary`2[[System.String, "
              "mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089],[System.Object, "
              "mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089]]", "System.Object")),
    ("dict", (SMA + "PSPrimitiveDictionary", "System.Collections.Hashtable", "System.Object")),
    ("enum", (SMA + "CommandOrigin", "System.Enum", "System.ValueType", "System.Object")),
    ("enum", (SMA + "SessionStateEntryVisibility", "System.Enum", "System.ValueType", "System.Object")),
    ("enum", ("Microsoft.Exchange.Data.ObjectState", "System.Enum", "System.ValueType", "System.Object")),
    ("enum", (SMA + "SwitchParameter", "System.ValueType", "System.Object")),
)
TEXT = st.lists(st.sampled_from(["a", "Z", " ", "_", "x", "0", "A", "<", "&", ">", "'", '"', "\u00e9", "\u2019",
                                 "_x000A_", "_x005F_", "_X0041_", "\U0001f600", "\\"]), max_size=8).map("".join)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@dataclass
class Doc:
    """State while drawing one document: RefIds and TN ids handed out so far."""

    draw: Any
    next_ref: int = 0
    type_ids: dict[tuple[str, ...], int] = field(default_factory=dict)
    next_type_id: int = 0
    refs: list[int] = field(default_factory=list)

    def name(self, name: str | None) -> str:
        return "" if name is None else f' N="{_escape(name)}"'

    def primitive(self, name: str | None) -> str:
        n = self.name(name)
        kind = self.draw(st.sampled_from(["S", "S", "B", "I32", "I64", "Nil", "DT", "Version", "Ref", "Sempty"]))
        if kind == "S":
            return f"<S{n}>{_escape(self.draw(TEXT))}</S>"
        if kind == "Sempty":
            return f"<S{n} />"
        if kind == "B":
            return f"<B{n}>{self.draw(st.sampled_from(['true', 'false', 'True']))}</B>"
        if kind in ("I32", "I64"):
            return f"<{kind}{n}>{self.draw(st.integers(-5, 2**31 - 1))}</{kind}>"
        if kind == "Nil":
            return f"<Nil{n} />"
        if kind == "DT":
            return f"<DT{n}>2026-11-27T11:39:48.1234567+00:00</DT>"
        if kind == "Version":
            return f"<Version{n}>2.3</Version>"
        if self.refs:
            return f'<Ref{n} RefId="{self.draw(st.sampled_from(self.refs))}" />'
        return f"<Nil{n} />"

    def value(self, name: str | None, depth: int) -> str:
        if depth > 0 and self.draw(st.booleans()):
            return self.obj(name, depth - 1)
        return self.primitive(name)

    def type_names(self, names: tuple[str, ...]) -> str:
        if not names:
            return ""
        known = self.type_ids.get(names)
        if known is not None and self.draw(st.booleans()):
            return f'<TNRef RefId="{known}" />'
        self.type_ids[names] = self.next_type_id  # a list written again gets a new RefId, as a TN may
        self.next_type_id += 1
        listed = "".join(f"<T>{_escape(name)}</T>" for name in names)
        return f'<TN RefId="{self.type_ids[names]}">{listed}</TN>'

    def members(self, tag: str, depth: int) -> str:
        names = self.draw(st.lists(st.sampled_from(["Identity", "User", "Deny", "Message", "Name", "IsPresent",
                                                    "Value", "x_x000A_y"]), max_size=4))
        return f"<{tag}>{''.join(self.value(name, depth) for name in names)}</{tag}>"

    def obj(self, name: str | None, depth: int, kind_and_types: tuple[str, tuple[str, ...]] | None = None) -> str:
        kind, types = kind_and_types or self.draw(st.sampled_from(TYPE_LISTS))
        ref = self.next_ref
        self.next_ref += 1
        head = f'<Obj{self.name(name)} RefId="{ref}">{self.type_names(types)}'
        if kind == "list":
            count = self.draw(st.integers(0, 3))
            body = f"<LST>{''.join(self.value(None, depth) for _ in range(count))}</LST>"
        elif kind == "dict":
            count = self.draw(st.integers(0, 3))
            entries = "".join(f'<En><S N="Key">{_escape(self.draw(TEXT))}</S>{self.value("Value", depth)}</En>'
                              for _ in range(count))
            body = f"<DCT>{entries}</DCT>"
        elif kind == "enum":
            body = f"<ToString>{_escape(self.draw(TEXT))}</ToString><I32>{self.draw(st.integers(0, 1))}</I32>"
            if self.draw(st.booleans()):
                body += '<Props><B N="IsPresent">false</B></Props>'
        else:
            parts = []
            for part in self.draw(st.permutations(["ToString", "Props", "MS"])):  # in document order: Refs point back
                if not self.draw(st.booleans()):
                    continue
                if part == "ToString":
                    parts.append(f"<ToString>{_escape(self.draw(TEXT))}</ToString>")
                else:
                    parts.append(self.members(part, depth))
            body = "".join(parts)
        self.refs.append(ref)
        return head + body + "</Obj>"

    def error_record(self) -> str:
        """An ErrorRecord message with the members pypsrp's ErrorRecordMessage reads, some left out or odd."""
        self.next_ref = 1
        parts = [f'<Obj RefId="0">{self.type_names((SMA + "ErrorRecord", "System.Object"))}<MS>']
        parts.append(self.obj("Exception", 2, ("generic", ("Microsoft.Exchange.Configuration.Tasks."
                                                           "ManagementObjectNotFoundException", "System.Exception",
                                                           "System.Object"))))
        parts.append(self.value("TargetObject", 1))
        parts.append('<S N="FullyQualifiedErrorId">655AD2F1,Microsoft.Exchange.Management.GetMailboxPermission</S>')
        if self.draw(st.booleans()):
            parts.append(self.obj("InvocationInfo", 2, ("generic", (SMA + "InvocationInfo", "System.Object"))))
        parts.append(f'<I32 N="ErrorCategory_Category">{self.draw(st.integers(0, 31))}</I32>')
        for member in ("ErrorCategory_Activity", "ErrorCategory_Reason", "ErrorCategory_TargetName"):
            if self.draw(st.booleans()):
                parts.append(f'<S N="{member}">{_escape(self.draw(TEXT))}</S>')
        parts.append(f'<B N="SerializeExtendedInfo">{self.draw(st.sampled_from(["true", "false"]))}</B>')
        if self.draw(st.booleans()):
            parts.append(self.obj("InvocationInfo_BoundParameters", 1, TYPE_LISTS[12]))
        if self.draw(st.booleans()):
            parts.append(self.obj("InvocationInfo_UnboundArguments", 1, TYPE_LISTS[5]))
        if self.draw(st.booleans()):
            parts.append(self.obj("InvocationInfo_CommandOrigin", 0, TYPE_LISTS[14]))
        parts.append('<S N="InvocationInfo_InvocationName">Get-MailboxPermission</S>')
        if self.draw(st.booleans()):
            parts.append('<Obj N="InvocationInfo_PipelineIterationInfo" RefId="90"><TN RefId="90"><T>System.Int32[]'
                         '</T><T>System.Array</T><T>System.Object</T></TN><LST><I32>0</I32><I32>1</I32></LST></Obj>')
        parts.append(f"</MS><ToString>{_escape(self.draw(TEXT))}</ToString></Obj>")
        return "".join(parts)


@st.composite
def output_objects(draw: Any) -> str:
    return Doc(draw).obj(None, 3)


@st.composite
def error_records(draw: Any) -> str:
    return Doc(draw).error_record()


def read(serializer: Serializer, text: str, metadata: Any = None) -> Any:
    try:
        return plain(serializer.deserialize(text, metadata))
    except Exception as exc:  # the comparison is of what each serializer does, failures included
        return ["raised", type(exc).__name__]


@settings(max_examples=300, deadline=None)
@given(output_objects())
def test_output_objects_read_as_pypsrp_reads_them(text: str) -> None:
    ET.fromstring(text)  # the generator writes well-formed XML
    assert read(LeafFastSerializer(), text) == read(Serializer(), text)


@settings(max_examples=300, deadline=None)
@given(error_records())
def test_error_records_read_as_pypsrp_reads_them(text: str) -> None:
    ET.fromstring(text)
    meta = ObjectMeta("Obj", object=ErrorRecordMessage)
    fast = read(LeafFastSerializer(), text, meta)
    assert fast == read(Serializer(), text, ObjectMeta("Obj", object=ErrorRecordMessage))
    assert fast[0] != "raised"


def test_an_exchange_not_found_record_reads_as_pypsrp_reads_it() -> None:
    """The shape the lab sends for ManagementObjectNotFound (bound parameters, enums, InvocationInfo)."""
    record = (
        '<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T><T>System.Object</T></TN><MS>'
        '<Obj RefId="1" N="Exception"><TN RefId="1"><T>Microsoft.Exchange.Configuration.Tasks.'
        "ManagementObjectNotFoundException</T><T>System.Exception</T><T>System.Object</T></TN><Props>"
        "<S N=\"Message\">The operation couldn't be performed because object 'nobody' couldn't be found.</S>"
        '<Nil N="Data" /><I32 N="HResult">-2146233087</I32></Props><ToString>not found</ToString></Obj>'
        '<S N="TargetObject">nobody</S><S N="FullyQualifiedErrorId">655AD2F1,Get-MailboxPermission</S>'
        '<Obj RefId="2" N="InvocationInfo"><TN RefId="2"><T>System.Management.Automation.InvocationInfo</T>'
        '<T>System.Object</T></TN><Props><Obj RefId="3" N="BoundParameters"><TN RefId="3"><T>System.Management.'
        "Automation.PSBoundParametersDictionary</T><T>System.Object</T></TN><DCT><En><S N=\"Key\">Identity</S>"
        '<S N="Value">nobody</S></En></DCT></Obj><Obj RefId="4" N="CommandOrigin"><I32>0</I32><TN RefId="4">'
        "<T>System.Management.Automation.CommandOrigin</T><T>System.Enum</T><T>System.ValueType</T>"
        "<T>System.Object</T></TN><ToString>Runspace</ToString></Obj></Props></Obj>"
        '<I32 N="ErrorCategory_Category">6</I32><S N="ErrorCategory_Reason">ManagementObjectNotFoundException</S>'
        '<B N="SerializeExtendedInfo">true</B><Obj RefId="5" N="InvocationInfo_BoundParameters"><TNRef RefId="3" />'
        '<DCT><En><S N="Key">Identity</S><S N="Value">nobody</S></En></DCT></Obj>'
        '<Ref RefId="4" N="InvocationInfo_CommandOrigin" /></MS><ToString>not found</ToString></Obj>'
    )
    fast = LeafFastSerializer().deserialize(record, ObjectMeta("Obj", object=ErrorRecordMessage))
    assert plain(fast) == plain(Serializer().deserialize(record, ObjectMeta("Obj", object=ErrorRecordMessage)))
    assert fast.invocation_bound_parameters == {"Identity": "nobody"}
    assert fast.reason == "ManagementObjectNotFoundException" and fast.target_object == "nobody"
