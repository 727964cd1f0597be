"""The one summary of a run: the count per state, which items need attention, and a one-sentence headline.

The terminal summary line, the tables' captions, the JSON report's ``summary``, the HTML page's headline and its
"Needs attention" section, and the metrics all read it, so none of them can tell a different story. Items that
need attention (:data:`~provisioner.domain.model.ATTENTION_RESULTS`): ``missing`` (an audit found the access absent),
``failed``, ``blocked`` and ``unknown``. The exit code is the run's own (:attr:`provisioner.runs.result.RunResult.
final_exit_code`); the rules linking the two are documented in docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provisioner.domain.model import ATTENTION_RESULTS, Action, Outcome, Result, count_results
from provisioner.domain.wording import counted, plural

if TYPE_CHECKING:
    from collections.abc import Iterable

    from provisioner.runs.result import RunResult


def needs_attention(outcome: Outcome) -> bool:
    return outcome.result in ATTENTION_RESULTS


def attention_first(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """The items that need attention first (a stable sort: otherwise in run order)."""
    return sorted(outcomes, key=lambda outcome: not needs_attention(outcome))


def breakdown(counts: Mapping[Result, int]) -> str:
    """``1 missing, 2 present``: the counts in :data:`ORDER`, each with its state's name."""
    return ", ".join(f"{count:,} {state.value}" for state, count in counts.items())


@dataclass(frozen=True)
class Summary:
    """What a run's items add up to. ``counts`` holds only the states that occur, in :data:`ORDER`."""

    action: Action
    dry_run: bool
    counts: Mapping[Result, int]
    exit_code: int
    refused: str | None = None  # why nothing was applied (e.g. too many changes)

    @classmethod
    def of(cls, result: RunResult) -> Summary:
        refused = str(result.refused) if result.refused is not None else None
        return cls(result.job.action, result.job.dry_run, count_results(result.outcomes),
                   int(result.final_exit_code), refused)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def attention_counts(self) -> dict[Result, int]:
        return {state: count for state, count in self.counts.items() if state in ATTENTION_RESULTS}

    @property
    def attention(self) -> int:
        """How many items need attention (missing, failed, blocked, unknown)."""
        return sum(self.attention_counts.values())

    @property
    def verdict(self) -> str:
        """``refused``, ``attention``, ``dry-run``, ``in-order`` or ``empty``: what the headline says, as a word."""
        if self.refused is not None:
            return "refused"
        if self.attention:
            return "attention"
        if self.total == 0:
            return "empty"
        return "dry-run" if self.dry_run else "in-order"

    @property
    def headline(self) -> str:
        """One sentence a manager can stop reading after, e.g. ``2 of 5 items need attention: 1 missing, 1 failed.``"""
        total = counted(self.total, "item")
        verdict = self.verdict
        if verdict == "refused":
            return f"Refused, nothing was applied: {total} ({breakdown(self.counts)})."
        if verdict == "attention":
            dry = "; dry run, nothing was changed" if self.dry_run else ""
            return (f"{self.attention:,} of {total} {plural('needs', self.attention)} attention "
                    f"({breakdown(self.attention_counts)}){dry}.")
        if verdict == "empty":
            return "No items."
        if verdict == "dry-run":
            return f"Dry run, nothing was changed: {total} ({breakdown(self.counts)})."
        every = "All " if self.total > 1 else ""
        return f"{every}{total} {plural('is', self.total)} in order ({breakdown(self.counts)})."

    def record(self) -> dict[str, Any]:
        """The JSON report's view: counts keyed by state name."""
        return {
            "items": self.total,
            "results": {state.value: count for state, count in self.counts.items()},
            "attention": self.attention,
            "attention_results": {state.value: count for state, count in self.attention_counts.items()},
            "headline": self.headline,
            "exit_code": self.exit_code,
        }

    @property
    def items(self) -> str:
        """``3 items (1 failed, 2 granted)``."""
        counts = f" ({breakdown(self.counts)})" if self.counts else ""
        return f"{counted(self.total, 'item')}{counts}"

    def line(self, seconds: float) -> str:
        """The terminal's summary line (stderr), e.g. ``audit: 3 items (1 failed, 1 missing, 1 present) in 0.4s;
        2 need attention; exit 3``."""
        dry = " (dry run)" if self.dry_run else ""
        parts = [f"{self.action.value}{dry}: {self.items} in {seconds:.1f}s"]
        if self.refused is not None:
            parts.append("refused, nothing was applied")
        if self.attention:
            parts.append(f"{self.attention:,} {plural('needs', self.attention)} attention")
        parts.append(f"exit {self.exit_code}")
        return "; ".join(parts)
