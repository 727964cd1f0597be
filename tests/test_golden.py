"""The CLI's outputs stay byte-identical (times, ids, digests and paths masked) on the golden journeys: the net under
refactorings that move code without meaning to change behaviour. See tests/golden.py."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from tests.golden import GOLDEN, Journey, journeys, run


@pytest.mark.parametrize("journey", journeys(), ids=lambda j: j.name)
def test_the_cli_says_and_writes_what_it_said_and_wrote_before(journey: Journey, tmp_path: Path) -> None:
    got = run(journey, tmp_path)
    expected = GOLDEN / f"{journey.name}.txt"
    if os.environ.get("PROVISIONER_GOLDEN_UPDATE") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        expected.write_text(got, encoding="utf-8")
    want = expected.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now", n=2))
    assert got == want, diff[:6000]
