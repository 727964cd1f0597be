"""The CLIXML reader on real captures (tests/data/clixml/README.md) and on bad input."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
from psrpcore.types import deserialize
from pypsrp.serializer import Serializer

from provisioner.transport import records
from provisioner.transport.psrp import clixml
from tests.clixml_docs import Ours, Psrpcore, Pypsrp, for_comparison_with_pypsrp

DATA = Path(__file__).parent / "data" / "clixml"
CAPTURES = sorted(path.name for path in DATA.glob("*.xml"))


def capture(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.mark.parametrize("name", CAPTURES)
def test_captures_read_as_psrpcore_reads_them(name: str) -> None:
    data = capture(name)
    theirs = deserialize(ElementTree.fromstring(data), None)  # type: ignore[arg-type]
    assert Ours(collection_text=False).form(clixml.read(data)) == Psrpcore(collection_text=False).form(theirs)


# pypsrp reads the metadata objects into its own classes (CommandMetadataCount, CommandMetadata): not comparable here
@pytest.mark.parametrize("name", ["o365-adobjectid.xml", "mailbox-ace.xml"])
def test_captures_read_as_pypsrp_reads_them(name: str) -> None:
    data = capture(name)
    ours = for_comparison_with_pypsrp(Ours().form(clixml.read(data)))
    assert ours == Pypsrp().form(Serializer().deserialize(data.decode("utf-8-sig")))


def test_the_adobjectid_holds_itself() -> None:
    domain = clixml.read(capture("o365-adobjectid.xml"))
    assert isinstance(domain, clixml.PSObj)
    assert domain.types == ("Microsoft.Exchange.Data.Directory.ADObjectId", "Microsoft.Exchange.Data.ObjectId",
                            "System.Object")
    assert str(domain) == "com"
    props = clixml.properties(domain)
    assert props["DomainId"] is domain
    assert props["Depth"] == 0 and props["IsDeleted"] is False and props["Parent"] is None
    assert props["DistinguishedName"] == "DC=com"


def test_command_metadata_reads_names_parameters_and_enums() -> None:
    count = clixml.read(capture("get-command-metadata-count.xml"))
    assert clixml.properties(count) == {"Count": 3}
    cmdlet = clixml.read(capture("get-command-metadata-new-pssession.xml"))
    props = clixml.properties(cmdlet)
    assert props["Name"] == "New-PSSession" and props["Namespace"] == "Microsoft.PowerShell.Core"
    assert str(props["CommandType"]) == "Cmdlet" and props["CommandType"].value == 8
    parameters = props["Parameters"]
    assert isinstance(parameters, clixml.PSDict) and len(parameters) == 30
    assert {"ComputerName", "Credential", "ConfigurationName", "Port", "UseSSL"} <= set(parameters)
    computer = clixml.properties(parameters["ComputerName"])
    assert computer["ParameterType"] == "System.String[]" and list(computer["Aliases"]) == ["Cn"]
    assert computer["SwitchParameter"] is False
    assert clixml.properties(parameters["UseSSL"])["SwitchParameter"] is True
    # a TNRef names the type list of the first ParameterMetadata
    assert parameters["Port"].types == ("System.Management.Automation.ParameterMetadata", "System.Object")


def test_an_ace_reads_as_the_tool_reads_pypsrp_objects() -> None:
    data = capture("mailbox-ace.xml")
    ours, theirs = clixml.read(data), Serializer().deserialize(data.decode("utf-8"))
    entry = records.permission_entry(ours)
    assert entry is not None and entry == records.permission_entry(theirs)
    assert records.type_names(ours) == records.type_names(theirs)
    assert records.text(clixml.properties(ours)["User"]) == records.text(records.properties(theirs)["User"])


@pytest.mark.parametrize(("text", "problem"), [
    ("<Obj RefId='0'><Props><S N='A'>x</S>", "not well-formed"),
    ("<Obj RefId='0'><Props><Ref N='A' RefId='7'/></Props></Obj>", "no earlier object"),
    ("<Obj RefId='0'><TNRef RefId='3'/></Obj>", "no earlier <TN>"),
    ("<Obj RefId='0'><Props><Q N='A'>x</Q></Props></Obj>", "unknown CLIXML element <Q>"),
    ("<Obj RefId='0'><Props><S>x</S></Props></Obj>", "without a name"),
    ("<I32>twelve</I32>", "<I32> holds 'twelve'"),
    ("<DT>yesterday</DT>", "not a CLIXML DateTime"),
    ("<Obj RefId='0'><DCT><En><S N='Key'>a</S></En></DCT></Obj>", "without a Key or a Value"),
])
def test_bad_clixml_is_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(clixml.ClixmlError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        clixml.read(text)


def test_values_of_every_kind() -> None:
    secure = clixml.read("<SS>AQID</SS>")
    assert isinstance(secure, clixml.SecureText) and secure == "AQID"
    assert clixml.read("\ufeff<S>a_x000A_b</S>".encode()) == "a\nb"
    assert clixml.read("<S>_xD83D__xDE00_</S>") == "\U0001f600"
    assert clixml.read("<C>8364</C>") == "\u20ac"
    queue = clixml.read("<Obj RefId='0'><TN RefId='0'><T>System.Collections.Queue</T></TN><QUE><I32>1</I32>"
                        "<I32>2</I32></QUE></Obj>")
    assert isinstance(queue, clixml.PSList) and queue.kind == "QUE" and queue == [1, 2]
