"""Per-object read time of one ~2.2 KB MailboxAcePresentationObject: the tool's reader against pypsrp's and
psrpcore's deserialisers (``python benchmarks/clixml.py``; the best of several rounds, single thread)."""

from __future__ import annotations

import timeit
from pathlib import Path
from xml.etree import ElementTree

from psrpcore.types import deserialize
from pypsrp.serializer import Serializer

from provisioner.transport.psrp import clixml

ACE = Path(__file__).parent.parent / "tests" / "data" / "clixml" / "mailbox-ace.xml"


def best_microseconds(call: object, number: int) -> float:
    timer = timeit.Timer(call)  # type: ignore[arg-type]
    return min(timer.repeat(repeat=7, number=number)) / number * 1e6


def main() -> None:
    data = ACE.read_bytes()
    text = data.decode("utf-8")
    ours = best_microseconds(lambda: clixml.read(data), 2000)
    pypsrp = best_microseconds(lambda: Serializer().deserialize(text), 200)
    psrpcore = best_microseconds(lambda: deserialize(ElementTree.fromstring(data), None), 200)  # type: ignore[arg-type]
    print(f"one {len(data):,}-byte ACE object, microseconds per object (best of 7 rounds)")
    print(f"  provisioner.transport.psrp.clixml  {ours:8.1f}")
    print(f"  pypsrp Serializer        {pypsrp:8.1f}   ({pypsrp / ours:.1f}x ours)")
    print(f"  psrpcore deserialize     {psrpcore:8.1f}   ({psrpcore / ours:.1f}x ours)")


if __name__ == "__main__":
    main()
