"""A runner with real behaviour for engine tests: the lab's Exchange engine in-process, no wire.

It stands where :class:`provisioner.transport.runner.PsrpRunner` stands (the seam below the engine): pipelines go to the
lab engine as statements with plain values, and what comes back is shaped as pypsrp hands it over (objects with
``types`` and ``adapted_properties``, errors with their origin). ``protocol`` "2.1" models a PowerShell 2.0
server: only the first statement of a pipeline runs, the others are dropped without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner_lab.api import Argument, Invocation, LabEnum, LabError, LabObject, Statement
from provisioner_lab.exchange.engine import ExchangeEngine

from provisioner.domain.model import ErrorInfo
from provisioner.transport.facts import ServerFacts
from provisioner.transport.runner import Origin, Pipeline, Raw, wire_value


@dataclass
class Obj:
    """An object as pypsrp deserialises one: type names, adapted properties, ToString."""

    types: list[str]
    adapted_properties: dict[str, Any]
    to_string: str
    extended_properties: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.to_string


def plain(value: Any) -> Any:
    if isinstance(value, LabObject):
        return Obj(list(value.type_names), {k: plain(v) for k, v in value.properties.items()}, value.to_string)
    if isinstance(value, LabEnum):
        return value.text
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def error(record: LabError) -> tuple[ErrorInfo, Origin]:
    bound = {str(k).casefold(): v for k, v in (record.bound_parameters or {}).items()}
    identity = bound.get("identity")
    user = bound.get("user")
    target = "" if record.target_object is None else str(record.target_object)
    info = ErrorInfo(" ".join(record.message.split()), record.reason, record.category, record.fq_error_id, target)
    return info, Origin(record.command or "", None if identity is None else str(identity),
                        None if user is None else str(user), target)


class LabRunner:
    """Command mode against an in-process lab engine."""

    piping = True

    def __init__(self, engine: ExchangeEngine, protocol: str = "2.3",
                 commands: Mapping[str, frozenset[str]] | None = None, user: str = "lab-admin") -> None:
        self.engine = engine
        self.facts = ServerFacts(protocol, {"PSVersion": "2.0" if protocol == "2.1" else "5.1"}, commands)
        self.user = user
        self.pipelines: list[Pipeline] = []

    def run(self, pipeline: Pipeline) -> Raw:
        self.pipelines.append(pipeline)
        statements = [
            Statement(tuple(
                Invocation(str(command.cmdlet), tuple(
                    Argument(str(p.name), None if p.is_switch else wire_value(p.value)) for p in command.parameters
                ))
                for command in chain
            ))
            for chain in pipeline.statements
        ]
        if not self.facts.runs_statements:
            statements = statements[:1]  # PowerShell 2.0 reads Cmds only
        result = self.engine.run(statements, list(pipeline.input or []), user=self.user)
        raw = Raw(output=[plain(obj) for obj in result.output])
        raw.errors = [error(record) for record in result.errors]
        raw.warnings = [(text, Origin()) for text in result.warnings]
        if result.failure is not None:
            raw.failure = error(result.failure)
        return raw
