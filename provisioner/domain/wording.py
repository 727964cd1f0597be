"""Counted nouns for messages: ``1 mailbox``, ``2 mailboxes`` (never ``1 mailboxes``)."""

from __future__ import annotations

_PLURALS = {"mailbox": "mailboxes", "entry": "entries", "is": "are", "needs": "need"}


def plural(noun: str, count: int) -> str:
    """``noun`` as it reads after ``count``: English plural for anything but exactly one."""
    if count == 1:
        return noun
    return _PLURALS.get(noun, noun + "s")


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun`` in agreement, the count with thousands separators: ``1 item``, ``3,000 items``."""
    return f"{count:,} {plural(noun, count)}"
