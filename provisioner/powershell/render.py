"""The single Jinja2 environment, and rendering of plans and steps as PowerShell.

Escaping is the environment's default, not a habit of the templates: ``autoescape`` is on and the finalizer
turns every expression's value into PowerShell source with :func:`provisioner.powershell.literals.literal` (strings
become
single-quoted literals, or concatenations with ``[char]`` codes for invisible and lookalike characters, so
that neither a command nor a comment can hold a raw bidirectional control or zero-width character) and marks
it safe. A template that prints a variable with no filter at all therefore still prints a quoted literal.
Only values the code marks as trusted pass unchanged: :class:`~provisioner.powershell.literals.Bare` tokens (cmdlet and
parameter names, enum values) and ``Markup`` (macro output, the config author's preamble).
Strings with control characters are refused outright: a line break could end a comment line and start code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from provisioner import __version__
from provisioner.domain.model import Outcome, Plan, count_results
from provisioner.domain.outcomes import unchanged_outcome
from provisioner.powershell.literals import Bare, literal
from provisioner.powershell.steps import Command, Step

if TYPE_CHECKING:
    import jinja2

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class RenderError(ValueError):
    """A value cannot be written into a script safely."""


def template_dir() -> Path:
    """Templates ship inside the wheel as ``provisioner/templates``; in a source checkout they are top level."""
    here = Path(__file__).resolve().parents[1]  # the provisioner package
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "script.ps1.j2").is_file():
            return candidate
    raise RenderError(f"templates not found next to {here}")


def _refuse_control(value: Any) -> None:
    if isinstance(value, str) and _CONTROL.search(value):
        raise RenderError(f"refusing to render a value with a control character: {value!r}")
    if isinstance(value, list | tuple):
        for element in value:
            _refuse_control(element)


def _finalize(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    _refuse_control(value)
    return Markup(literal(value))


def _oneline(value: object) -> str:
    """Free text (e.g. an error message from the server) folded onto one line, for a comment."""
    return " ".join(_CONTROL.sub(" ", str(value)).split())


def templates(finalize: Callable[[Any], Any], *, keep_trailing_newline: bool = False) -> jinja2.Environment:
    """The shipped templates (review script, HTML report) with ``finalize`` as the one escaping point of every
    ``{{ }}``: an undefined name is an error, and whitespace control keeps the output as the template reads.
    Jinja2 is imported here, when a script or report is rendered: a run that writes neither never loads it."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=keep_trailing_newline,
    )


@functools.cache
def environment() -> jinja2.Environment:
    env = templates(_finalize, keep_trailing_newline=True)
    env.filters["oneline"] = _oneline
    return env


def render_command(command: Step | Command) -> str:
    """One command (or step) as one command line (the same macro the full script uses)."""
    return environment().get_template("step.ps1.j2").render(step=command).strip()


@dataclass(frozen=True)
class ScriptContext:
    server: str
    domain_controller: str | None = None
    preamble: str | None = None  # trusted: written by the config author
    plan_digest: str | None = None  # the saved plan this script shows (``sha256:`` and hex digits only)
    exchange_online: bool = False  # the header says how the script runs there (V3 module)


class _Unchanged:
    """The plan's unchanged items as the outcomes the run reports for them (the same state words as stderr, the
    tables and the reports: a mailbox that does not exist is ``failed``), iterated lazily (the template only tests
    it and loops over it)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def __bool__(self) -> bool:
        return any(not item.changes for item in self.plan.items)

    def __iter__(self) -> Iterator[Outcome]:
        return (unchanged_outcome(item, self.plan.action) for item in self.plan.items if not item.changes)


def script_counts(plan: Plan) -> list[tuple[str, int]]:
    """The header's "Items per state": the count per state in the words the run's summary line uses."""
    outcomes = (unchanged_outcome(item, plan.action) for item in plan.items)
    return [(state.value, count) for state, count in count_results(outcomes).items()]


def _script_variables(
    plan: Plan, steps: Iterable[Step], context: ScriptContext, now: datetime | None
) -> dict[str, Any]:
    generated = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": __version__,
        "action": Bare(plan.action.value),
        "generated": generated,
        "server": context.server,
        "domain_controller": context.domain_controller,
        "plan_digest": _digest(context.plan_digest),
        "observed": plan.observed,
        "trustees": plan.trustees,
        "counts": script_counts(plan),
        "preamble": Markup(context.preamble) if context.preamble else None,
        "exchange_online": context.exchange_online,
        "steps": steps,
        "unchanged": _Unchanged(plan),
    }


def _digest(value: str | None) -> Markup | None:
    """A plan digest, written as is once it is known to be nothing but ``sha256:`` and 64 hex digits."""
    if value is None:
        return None
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise RenderError(f"not a plan digest: {value!r}")
    return Markup(value)


def render_script(plan: Plan, steps: Iterable[Step], context: ScriptContext, *, now: datetime | None = None) -> str:
    """The reviewable script: header, preamble, one command per change, and the unchanged items as comments.

    ``steps`` may be a generator: nothing but the output is kept per step.
    """
    return environment().get_template("script.ps1.j2").render(_script_variables(plan, steps, context, now))
