"""The tool's CLIXML reader against psrpcore's and pypsrp's deserialisers, on generated documents."""

from __future__ import annotations

from xml.etree import ElementTree

from hypothesis import given, settings
from psrpcore.types import deserialize
from pypsrp.serializer import Serializer

from provisioner.transport.psrp import clixml
from tests.clixml_docs import Ours, Psrpcore, Pypsrp, documents, for_comparison_with_pypsrp


@settings(max_examples=300)
@given(documents())
def test_reads_as_psrpcore_reads(text: str) -> None:
    ours = Ours().form(clixml.read(text))
    theirs = Psrpcore().form(deserialize(ElementTree.fromstring(text), None))  # type: ignore[arg-type]
    assert ours == theirs


@settings(max_examples=300)
@given(documents(for_pypsrp=True))
def test_reads_as_pypsrp_reads(text: str) -> None:
    ours = for_comparison_with_pypsrp(Ours().form(clixml.read(text)))
    theirs = Pypsrp().form(Serializer().deserialize(text))
    assert ours == theirs
