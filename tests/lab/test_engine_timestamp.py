"""The per-second cache of the FullyQualifiedErrorId timestamp."""

from __future__ import annotations

from datetime import UTC, datetime

from provisioner_lab.exchange import engine


def test_cached_timestamp_is_the_current_one() -> None:
    for _ in range(3):
        before = engine._exchange_timestamp(datetime.now(UTC))
        cached = engine._current_timestamp()
        after = engine._exchange_timestamp(datetime.now(UTC))
        assert cached in (before, after)


def test_timestamp_format() -> None:
    assert engine._exchange_timestamp(datetime(2015, 12, 17, 9, 12, 25, tzinfo=UTC)) == "12/17/2015 9:12:25 AM"
    assert engine._exchange_timestamp(datetime(2015, 1, 2, 0, 5, 7, tzinfo=UTC)) == "1/2/2015 12:05:07 AM"
    assert engine._exchange_timestamp(datetime(2015, 1, 2, 13, 0, 0, tzinfo=UTC)) == "1/2/2015 1:00:00 PM"
