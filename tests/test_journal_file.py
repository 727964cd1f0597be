"""The journal file survives torn writes: a line cut short (a crash or a full disk mid-write) costs only itself,
never the record appended after it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.domain.model import Identity, Outcome, Result, Trustee
from provisioner.engine.journal import Journal, read

TRUSTEE = Trustee(Identity("svc@contoso.com"))
names = st.text(st.characters(categories=("L", "N"), include_characters="._-@"), min_size=1, max_size=12)
# each append: the mailboxes of one batch's change lines, then maybe a torn fragment left by a failed write
appends = st.lists(st.tuples(st.lists(names, min_size=1, max_size=3), st.integers(min_value=0, max_value=40)),
                   min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(appends)
def test_every_complete_append_is_read_back_whatever_was_torn_before_it(tmp_path_factory: object,
                                                                       batches: list[tuple[list[str], int]]) -> None:
    path = Path(tmp_path_factory.mktemp("journal")) / "journal.jsonl"  # type: ignore[attr-defined]
    journal = Journal(path)
    expected: list[str] = []
    for mailboxes, torn in batches:
        outcomes = [Outcome(Identity(m), TRUSTEE, Result.GRANTED) for m in mailboxes]
        action_of = {(m.casefold(), TRUSTEE.identity.value.casefold()): "grant" for m in mailboxes}
        journal.outcomes("run-1", outcomes, action_of)
        expected += mailboxes
        if torn:  # a write cut short: the start of a record, no newline
            with path.open("ab") as handle:
                handle.write(b'{"time": "2026-12-05T00:00:00+00:00", "run_id": "run-1", "kind": "change"'[:torn])
    assert [record["mailbox"] for record in read(path)] == expected
