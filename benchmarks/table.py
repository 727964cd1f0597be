"""The benchmark's rows, as a plain-text table and as markdown, and the targets read off them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from methods import FIRST, NOOP, PRODUCT

HEADER = ("run", "latency", "method", "req/pair", "wall s", "server CPU s", "client CPU s", "peak MB",
          "naive/prov", "prov/expert", "limit s", "wall/limit", "outcomes")
RIGHT = {"latency", "req/pair", "wall s", "server CPU s", "client CPU s", "peak MB", "naive/prov", "prov/expert",
         "limit s", "wall/limit"}


@dataclass
class Row:
    profile: str
    latency: int
    method: str
    run: str
    wall: float
    client_cpu: float
    server_cpu: float
    peak_mb: float
    summary: dict[str, int]
    problems: list[str] = field(default_factory=list)
    requests_per_pair: float | None = None
    sampled: bool = False  #: naive: measured on a sample, times scaled to all targets
    limit: float | None = None  #: the server-only limit of this run (:mod:`limit`): cost seconds + requests x latency

    @property
    def over_limit(self) -> float | None:
        return self.wall / self.limit if self.limit else None


def find(rows: Iterable[Row], profile: str, latency: int, method: str, run: str) -> Row | None:
    return next((row for row in rows if (row.profile, row.latency, row.method, row.run)
                 == (profile, latency, method, run)), None)


def ratio(rows: list[Row], row: Row, top: str, bottom: str) -> float | None:
    """wall(top) / wall(bottom) in the same profile, latency and run; None if either run gave no result."""
    upper = find(rows, row.profile, row.latency, top, row.run)
    lower = find(rows, row.profile, row.latency, bottom, row.run)
    if upper is None or lower is None or lower.wall <= 0 or not (upper.summary and lower.summary):
        return None
    return upper.wall / lower.wall


def fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else format(value, pattern)


def cells(rows: list[Row], row: Row) -> tuple[str, ...]:
    on_product = row.method in PRODUCT
    outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(row.summary.items()))
    return (row.run, f"{row.latency} ms", row.method + (" *" if row.sampled else ""),
            fmt(row.requests_per_pair, ".3f"), f"{row.wall:.2f}", f"{row.server_cpu:.2f}", f"{row.client_cpu:.2f}",
            f"{row.peak_mb:.0f}",
            fmt(ratio(rows, row, "naive", row.method) if on_product else None, ".1f"),
            fmt(ratio(rows, row, row.method, "expert") if on_product else None, ".2f"),
            fmt(row.limit, ".2f"), fmt(row.over_limit, ".2f"),
            outcomes + (" (CHECK FAILED)" if row.problems else ""))


def ordered(rows: list[Row], profile: str) -> list[Row]:
    runs = {FIRST: 0, NOOP: 1}
    methods = {"naive": 0, "expert": 1, "expert-client": 2, "provisioner": 3}
    mine = [row for row in rows if row.profile == profile]
    return sorted(mine, key=lambda row: (runs[row.run], row.latency, methods[row.method]))


def text_table(rows: list[Row], profile: str) -> str:
    body = [cells(rows, row) for row in ordered(rows, profile)]
    widths = [max(len(line[column]) for line in [HEADER, *body]) for column in range(len(HEADER))]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(value.rjust(width) if name in RIGHT else value.ljust(width)
                         for name, value, width in zip(HEADER, values, widths, strict=True)).rstrip()

    return "\n".join([line(HEADER), "-" * len(line(HEADER)), *(line(values) for values in body)])


def markdown_table(rows: list[Row], profile: str) -> str:
    rule = tuple("---:" if name in RIGHT else "---" for name in HEADER)
    body = [cells(rows, row) for row in ordered(rows, profile)]
    return "\n".join("| " + " | ".join(values) + " |" for values in [HEADER, rule, *body])


@dataclass(frozen=True)
class Target:
    text: str
    protocols: tuple[str, ...]
    run: str
    latency: int | None  #: None: every latency
    value: Callable[[list[Row], Row], float | None]  #: of the provisioner row
    limit: float
    at_most: bool


def requests_per_pair(_rows: list[Row], row: Row) -> float | None:
    return row.requests_per_pair


def naive_over_product(rows: list[Row], row: Row) -> float | None:
    return ratio(rows, row, "naive", row.method)


def product_over_expert(rows: list[Row], row: Row) -> float | None:
    return ratio(rows, row, row.method, "expert")


def product_over_limit(_rows: list[Row], row: Row) -> float | None:
    return row.over_limit


ALL = ("2.1", "2.2", "2.3")
#: The issue's targets for the default path (expert: the one-liner through pypsrp), on every protocol.
TARGETS = (
    Target("no-op provisioner/expert <= 0.7", ALL, NOOP, None, product_over_expert, 0.7, True),
    Target("no-op naive/provisioner >= 12", ALL, NOOP, 0, naive_over_product, 12, False),
    Target("no-op naive/provisioner >= 30", ALL, NOOP, 10, naive_over_product, 30, False),
    Target("no-op provisioner wall/server-only limit <= 2.5", ALL, NOOP, None, product_over_limit, 2.5, True),
    Target("first grant provisioner/expert <= 1.0", ALL, FIRST, None, product_over_expert, 1.0, True),
    Target("first grant naive/provisioner >= 10", ALL, FIRST, 0, naive_over_product, 10, False),
    Target("first grant naive/provisioner >= 25", ALL, FIRST, 10, naive_over_product, 25, False),
    Target("provisioner requests per pair <= 0.02", ALL, FIRST, None, requests_per_pair, 0.02, True),
    Target("provisioner requests per pair <= 0.02", ALL, NOOP, None, requests_per_pair, 0.02, True),
)


def target_lines(rows: list[Row], profile: str, protocol: str) -> list[str]:
    lines = []
    for target in TARGETS:
        if protocol not in target.protocols:
            continue
        for row in ordered(rows, profile):
            if row.method not in PRODUCT or row.run != target.run or target.latency not in (None, row.latency):
                continue
            value = target.value(rows, row)
            if value is None:
                continue
            met = value <= target.limit if target.at_most else value >= target.limit
            lines.append(f"  {'met   ' if met else 'MISSED'} {target.text.replace('provisioner', row.method)} "
                         f"at {row.latency} ms: {value:.3g}")
    return lines
