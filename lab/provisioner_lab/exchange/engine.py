"""The engine: runs PSRP pipelines (lists of statements) against a :class:`Directory`.

``ExchangeEngine.run`` implements :class:`provisioner_lab.api.Engine`. Statements run in order; within a
statement each command's output objects are the next command's input records. A terminating error stops
the whole pipeline (``PipelineResult.failure``); non-terminating errors are collected and execution goes on.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from provisioner_lab.api import (
    Invocation,
    LabError,
    MetadataQuery,
    MetadataResult,
    PipelineResult,
    Statement,
)
from provisioner_lab.exchange import discovery
from provisioner_lab.exchange.binding import Binder, BoundCommand, PreparedCommand, specs_for
from provisioner_lab.exchange.cmdlets import (
    add_mailbox_permission,
    get_mailbox_permission,
    remove_mailbox_permission,
)
from provisioner_lab.exchange.context import Context, Delegation
from provisioner_lab.exchange.core import HANDLERS as CORE_HANDLERS
from provisioner_lab.exchange.core import NAMESPACE as CORE_NAMESPACE
from provisioner_lab.exchange.cost import CostModel
from provisioner_lab.exchange.directory import Directory
from provisioner_lab.exchange.errors import (
    COMMAND_NOT_FOUND,
    NO_LANGUAGE_MESSAGE,
    PARSE,
    TRANSPORT,
    CmdletError,
    engine_error,
)
from provisioner_lab.exchange.rbac import Rbac, RbacOption
from provisioner_lab.exchange.recipients import (
    get_distribution_group_member,
    get_mailbox,
    get_recipient,
    get_user,
)
from provisioner_lab.exchange.script import ScriptError, parse_script
from provisioner_lab.profiles import DEFAULT_PROFILE, ServerProfile, get_profile

Handler = Callable[[Context], list[Any]]

HANDLERS: dict[str, Handler] = {
    "Add-MailboxPermission": add_mailbox_permission,
    "Get-MailboxPermission": get_mailbox_permission,
    "Remove-MailboxPermission": remove_mailbox_permission,
    "Get-Mailbox": get_mailbox,
    "Get-Recipient": get_recipient,
    "Get-User": get_user,
    "Get-DistributionGroupMember": get_distribution_group_member,
}
WRITE_CMDLETS = frozenset({"Add-MailboxPermission", "Remove-MailboxPermission"})
#: Cmdlets that change the delegate list once, for the last record, when they get pipeline input [code].
DEFERRED_DELEGATION = WRITE_CMDLETS

THROTTLE_MESSAGE = (
    "The WS-Management service cannot process the request. The user load quota of {max} requests per {period} "
    "seconds has been exceeded. Send future requests at a slower rate or raise the quota for this user. The next "
    "request from this user will not be approved for at least {wait} milliseconds."
)


def _exchange_timestamp(moment: datetime) -> str:
    """``12/17/2015 9:12:25 AM``: the US format Exchange prints in its FullyQualifiedErrorId."""
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {'AM' if moment.hour < 12 else 'PM'}"


def _current_timestamp() -> str:
    """:func:`_exchange_timestamp` of the current UTC time; formatted once per second (every cmdlet call needs it)."""
    return _timestamp_of_second(int(time.time()))


@functools.lru_cache(maxsize=1)
def _timestamp_of_second(second: int) -> str:
    return _exchange_timestamp(datetime.fromtimestamp(second, UTC))


@dataclass(frozen=True)
class EngineOptions:
    """Engine behaviour; every fault is off by default.

    ``language_mode``: ``NoLanguage`` (Exchange's endpoint: any script text fails) or ``FullLanguage`` (scripts
    in the subset of :mod:`script` run).
    ``throttle_max_cmdlets``: cmdlet invocations allowed per user per ``throttle_window_seconds``; the next one
    fails the pipeline with the on-prem PowerShellMaxCmdlets text. With ``throttle_refill=False`` the budget
    never refills: every invocation after the first N fails.
    The failure is a ``System.Management.Automation.Remoting.PSRemotingTransportException`` error record
    (category OperationStopped, FQEID ``JobFailure``), which is how a PowerShell client reports Exchange's
    WS-Management throttling fault; a real server sends the fault at the WS-Management layer instead.
    ``replication_delay_seconds``: a permission write becomes visible to reads after this many seconds, unless
    the read names the same ``-DomainController`` as the write. Time comes from the engine's ``clock``.
    ``profile``: the server release (:mod:`provisioner_lab.profiles`; a name or a ServerProfile): which
    parameters exist, the common parameters, what the protocol layer announces.
    ``rbac``: per-account trims of cmdlets and parameters (format in :mod:`provisioner_lab.exchange.rbac`).
    ``cost``: a :class:`~provisioner_lab.exchange.cost.CostModel` charged as wall time per pipeline (None: off).
    """

    language_mode: Literal["NoLanguage", "FullLanguage"] = "NoLanguage"
    server_name: str = "EX01"
    throttle_max_cmdlets: int | None = None
    throttle_window_seconds: float = 60.0
    throttle_refill: bool = True
    replication_delay_seconds: float = 0.0
    profile: str | ServerProfile = DEFAULT_PROFILE
    rbac: RbacOption = field(default_factory=dict)
    cost: CostModel | None = None


@dataclass
class Counters:
    """What the engine did (the client's pipelines; command-metadata requests only add to ``cost_seconds``).

    ``invocations`` counts Exchange cmdlet invocations by cmdlet name (``snapshot()`` gives the total under
    ``invocations`` and the split under ``by_cmdlet``); ``records`` the input records they processed (1 for
    a command without pipeline input); ``core_invocations``/``core_records`` the same for the PowerShell core
    cmdlets the session keeps public (Select-Object, Measure-Object; ``snapshot()``: ``core_invocations`` total,
    ``by_core_cmdlet``); ``writes`` permission (ACL) writes; ``cost_seconds`` the modelled server time charged (0
    without a cost model).
    """

    invocations: Counter[str] = field(default_factory=Counter)
    core_invocations: Counter[str] = field(default_factory=Counter)
    core_records: int = 0
    by_user: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    throttled: int = 0
    pipelines: int = 0
    records: int = 0
    metadata_requests: int = 0
    cost_seconds: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "pipelines": self.pipelines,
            "invocations": sum(self.invocations.values()),
            "records": self.records,
            "writes": self.writes,
            "cost_seconds": self.cost_seconds,
            "throttled": self.throttled,
            "metadata_requests": self.metadata_requests,
            "by_cmdlet": dict(self.invocations),
            "by_user": dict(self.by_user),
            "core_invocations": sum(self.core_invocations.values()),
            "core_records": self.core_records,
            "by_core_cmdlet": dict(self.core_invocations),
        }

    def reset(self) -> None:
        self.invocations.clear()
        self.core_invocations.clear()
        self.by_user.clear()
        self.writes = self.throttled = self.pipelines = self.records = self.metadata_requests = 0
        self.core_records = 0
        self.cost_seconds = 0.0


@dataclass
class _Tally:
    """The work of one run, for the cost model."""

    pipelines: int = 0
    invocations: int = 0
    records: int = 0
    writes: int = 0
    core_invocations: int = 0
    core_records: int = 0


@dataclass
class _View:
    """One session's cmdlets: the binder over its specs and its callable names (lower-case -> canonical)."""

    binder: Binder
    names: dict[str, str]


class _Failure(Exception):
    def __init__(self, record: LabError) -> None:
        super().__init__(record.message)
        self.record = record


class ExchangeEngine:
    """An in-memory Exchange organisation behind the ``Microsoft.Exchange`` endpoint's cmdlets."""

    def __init__(
        self,
        directory: Directory,
        options: EngineOptions | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.directory = directory
        self.options = options or EngineOptions()
        self.profile = get_profile(self.options.profile)
        self.clock = clock or time.monotonic
        #: How modelled server time is spent (a test may pass a fake); called without the engine lock.
        self.sleep: Callable[[float], None] = sleep or time.sleep
        self.counters = Counters()
        #: called with the write count after every permission write, inside the write (tests: kill a client
        #: after exactly k writes reached the server, mid-batch)
        self.on_write: Callable[[int], None] | None = None
        self._rbac = Rbac(self.options.rbac)
        self._default_view = self._make_view(frozenset(), frozenset())
        self.binder = self._default_view.binder  # the view of an account RBAC does not trim
        self._views: dict[tuple[frozenset[tuple[str, str]], frozenset[str]], _View] = {}
        self._tally = _Tally()
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """The engine's lock: ``run`` holds it; hold it to inspect ``directory`` while other threads run."""
        return self._lock

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_seed(
        cls, path: str | Path | None = None, options: EngineOptions | None = None,
        *, clock: Callable[[], float] | None = None,
    ) -> ExchangeEngine:
        """An engine over the org in a seed TOML file (the shipped ``demo.toml`` when ``path`` is None)."""
        from provisioner_lab.exchange.seed import load_seed

        return cls(load_seed(path), options, clock=clock)

    @classmethod
    def generated(
        cls, n_mailboxes: int, options: EngineOptions | None = None,
        *, clock: Callable[[], float] | None = None, **generate_options: Any,
    ) -> ExchangeEngine:
        """An engine over :func:`seed.generate` (``n_mailboxes`` synthetic mailboxes plus the trustees)."""
        from provisioner_lab.exchange.seed import generate

        return cls(generate(n_mailboxes, **generate_options), options, clock=clock)

    # ------------------------------------------------------------------ sessions
    def _make_view(self, parameters: frozenset[tuple[str, str]], cmdlets: frozenset[str]) -> _View:
        specs = specs_for(self.profile, parameters, cmdlets)
        return _View(Binder(specs), {name.lower(): name for name in (*HANDLERS, *CORE_HANDLERS) if name in specs})

    def _view(self, user: str | None) -> _View:
        """The cmdlets and parameters the session of ``user`` has (the profile's, minus RBAC's trims)."""
        trim = self._rbac.trim_for(user)
        if trim is None or not (trim.parameters or trim.cmdlets):
            return self._default_view
        key = (trim.parameters, trim.cmdlets)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = self._make_view(*key)
        return view

    def _charge(self, tally: _Tally) -> float:
        """Add a run's work to the counters' cost; the seconds to spend (outside the lock)."""
        cost = self.options.cost
        if cost is None:
            return 0.0
        seconds = cost.seconds(pipelines=tally.pipelines, invocations=tally.invocations, records=tally.records,
                               writes=tally.writes, core_invocations=tally.core_invocations,
                               core_records=tally.core_records)
        self.counters.cost_seconds += seconds
        return seconds

    # ------------------------------------------------------------------ running
    def run(self, statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> PipelineResult:
        """Run the statements in order (see :class:`provisioner_lab.api.Engine`); with a cost model, return only
        after the modelled server time, spent without holding the engine lock."""
        with self._lock:
            result = PipelineResult()
            self._tally = tally = _Tally(pipelines=1)
            self.counters.pipelines += 1
            view = self._view(user)
            try:
                if self.options.language_mode == "NoLanguage" and any(
                    command.is_script for statement in statements for command in statement.commands
                ):
                    raise _Failure(engine_error(NO_LANGUAGE_MESSAGE, PARSE, "ParserError", "ScriptsNotAllowed"))
                for index, statement in enumerate(statements):
                    records = list(pipeline_input) if index == 0 and pipeline_input else None
                    self._run_statement(statement, records, user, view, result)
            except _Failure as failure:
                result.failure = failure.record
            seconds = self._charge(tally)
        if seconds > 0:
            self.sleep(seconds)
        return result

    def command_metadata(self, query: MetadataQuery, *, user: str | None) -> MetadataResult:
        """GET_COMMAND_METADATA (see :mod:`provisioner_lab.exchange.discovery`). Charged as PowerShell runs it:
        two pipelines (Get-Command | Measure-Object | Select-Object, Get-Command | Select-Object), five
        invocations, and the records those commands process."""
        with self._lock:
            self.counters.metadata_requests += 1
            view = self._view(user)
            specs = [view.binder.specs[name] for name in view.names.values()]
            namespaces = {name: CORE_NAMESPACE if name in CORE_HANDLERS else self.profile.snapin
                          for name in view.names.values()}
            commands, errors = discovery.find(query, specs, namespaces)
            found = len(commands)
            seconds = self._charge(_Tally(pipelines=2, invocations=5, records=2 * found + 3))
        if seconds > 0:
            self.sleep(seconds)
        return MetadataResult(commands, errors)

    def _run_statement(
        self, statement: Statement, records: list[Any] | None, user: str | None, view: _View,
        result: PipelineResult,
    ) -> None:
        current = records
        last = len(statement.commands) - 1
        # PowerShell finds every command of a pipeline, and binds the arguments of its own cmdlets, before any of
        # them runs: an unknown command or a refused parameter fails the pipeline with nothing done
        names = [None if command.is_script else self._command_name(command, view) for command in statement.commands]
        prepared = {index: self._prepare(view, name, command) for index, (name, command)
                    in enumerate(zip(names, statement.commands, strict=True)) if name in CORE_HANDLERS}
        for index, command in enumerate(statement.commands):
            # the last command writes straight to the output, so objects written before a failure are kept
            sink = result.output if index == last else []
            name = names[index]
            if name is None:
                self._run_script(command.name, user, view, result, sink)
            elif index in prepared:
                self._run_core(name, prepared[index], current, user, view, sink)
            else:
                self._run_command(name, command, current, user, view, result, sink)
            current = sink

    def _run_script(self, text: str, user: str | None, view: _View, result: PipelineResult, sink: list[Any]) -> None:
        def is_switch(cmdlet: str, parameter: str) -> bool | None:
            name = view.names.get(cmdlet.lower())
            if name is None:
                return None
            try:
                return view.binder.param(name, parameter).type == "SwitchParameter"
            except CmdletError:
                return None  # the binder reports the unknown/ambiguous name when the command runs

        try:
            statements = parse_script(text, is_switch)
        except ScriptError as error:
            raise _Failure(engine_error(str(error), PARSE, "ParserError", error.error_id)) from None
        inner = PipelineResult(output=sink)
        try:
            for statement in statements:
                self._run_statement(statement, None, user, view, inner)
        finally:
            result.errors.extend(inner.errors)
            result.warnings.extend(inner.warnings)
            result.verbose.extend(inner.verbose)

    def _throttle(self, user: str | None) -> None:
        limit = self.options.throttle_max_cmdlets
        if limit is None:
            return
        now = self.clock()
        window = self.options.throttle_window_seconds
        calls = self._calls.setdefault(user or "", deque())
        if self.options.throttle_refill:
            while calls and calls[0] <= now - window:
                calls.popleft()
        if len(calls) >= limit:
            self.counters.throttled += 1
            wait = (calls[0] + window - now) if (self.options.throttle_refill and calls) else window
            message = THROTTLE_MESSAGE.format(max=limit, period=int(window), wait=max(1, int(wait * 1000)))
            # Exchange answers with a WS-Management fault; a PSRP client sees it as a transport error.
            raise _Failure(engine_error(message, TRANSPORT, "OperationStopped", "JobFailure", target=user))
        calls.append(now)

    @staticmethod
    def _command_name(command: Invocation, view: _View) -> str:
        """The canonical name of a command this session has; CommandNotFoundException otherwise."""
        name = view.names.get(command.name.strip().lower())
        if name is None:
            raise _Failure(engine_error(
                f"The term '{command.name}' is not recognized as the name of a cmdlet, function, script file, or "
                "operable program. Check the spelling of the name, or if a path was included, verify that the path "
                "is correct and try again.",
                COMMAND_NOT_FOUND, "ObjectNotFound", "CommandNotFoundException", target=command.name,
            ))
        return name

    @staticmethod
    def _prepare(view: _View, name: str, command: Invocation) -> PreparedCommand:
        try:
            return view.binder.prepare(name, command.arguments)
        except CmdletError as error:
            raise _Failure(error.record) from None

    def _run_core(
        self, name: str, prepared: PreparedCommand, records: list[Any] | None, user: str | None, view: _View,
        outputs: list[Any],
    ) -> None:
        """A PowerShell core cmdlet (:mod:`provisioner_lab.exchange.core`): all its input records at once. Not charged
        to the PowerShellMaxCmdlets budget, which Exchange keeps in its own cmdlets' task pipeline (UNCONFIRMED for
        the core cmdlets)."""
        self.counters.core_invocations[name] += 1
        self.counters.by_user[user or ""] += 1
        processed = 0 if records is None else len(records)
        self.counters.core_records += processed
        self._tally.core_invocations += 1
        self._tally.core_records += processed
        try:
            bound = view.binder.complete(prepared)
        except CmdletError as error:
            raise _Failure(error.record) from None
        items = list(records or [])
        if bound.has("InputObject"):
            items = [bound.get("InputObject")]  # bound once as a whole, as PowerShell binds -InputObject
        try:
            outputs.extend(CORE_HANDLERS[name](bound, items))
        except CmdletError as error:
            raise _Failure(error.record) from None

    def _run_command(
        self,
        name: str,
        command: Invocation,
        records: list[Any] | None,
        user: str | None,
        view: _View,
        result: PipelineResult,
        outputs: list[Any],
    ) -> None:
        self._throttle(user)
        self.counters.invocations[name] += 1
        self.counters.by_user[user or ""] += 1
        processed = 1 if records is None else len(records)
        self.counters.records += processed
        self._tally.invocations += 1
        self._tally.records += processed
        binder = view.binder
        try:
            prepared = binder.prepare(name, command.arguments)
            if records is None:
                bound = binder.complete(prepared)
            else:
                binder.check_begin(prepared)
        except CmdletError as error:
            raise _Failure(error.record) from None
        if records is None:
            self._invoke(bound, result, outputs)
            return
        deferred: list[Delegation] | None = [] if name in DEFERRED_DELEGATION else None
        last: BoundCommand | None = None
        for record in records:
            try:
                bound = binder.bind_record(prepared, record)
            except CmdletError as error:
                self._emit_errors([error.record], prepared.common.get("ErrorAction"), result)
                continue
            self._invoke(bound, result, outputs, deferred)
            last = bound
        if deferred and last is not None:
            # EndProcessing: the delegate list of the last record's mailbox, once [code]
            ctx = self._context(last)
            deferred[0](ctx)
            self._emit(ctx, last, result, None)

    def _emit_errors(self, errors: list[LabError], action: str | None, result: PipelineResult) -> None:
        if not errors or action in ("SilentlyContinue", "Ignore"):
            return
        if action == "Stop":
            raise _Failure(errors[0])
        result.errors.extend(errors)

    def _context(self, bound: BoundCommand, deferred: list[Delegation] | None = None) -> Context:
        def count_write() -> None:
            self.counters.writes += 1
            self._tally.writes += 1
            if self.on_write is not None:
                self.on_write(self.counters.writes)

        return Context(
            directory=self.directory,
            bound=bound,
            now=self.clock(),
            server=self.options.server_name,
            timestamp=_current_timestamp(),
            replication_delay=self.options.replication_delay_seconds,
            on_write=count_write,
            deferred=deferred,
        )

    def _invoke(
        self, bound: BoundCommand, result: PipelineResult, outputs: list[Any],
        deferred: list[Delegation] | None = None,
    ) -> None:
        ctx = self._context(bound, deferred)
        failure: CmdletError | None = None
        try:
            outputs.extend(HANDLERS[bound.cmdlet](ctx))
        except CmdletError as error:
            if not error.terminating:
                ctx.streams.errors.append(error.record)
            else:
                failure = error
        self._emit(ctx, bound, result, failure)

    def _emit(self, ctx: Context, bound: BoundCommand, result: PipelineResult, failure: CmdletError | None) -> None:
        if bound.common.get("WarningAction") not in ("SilentlyContinue", "Ignore"):
            result.warnings.extend(ctx.streams.warnings)
        if bound.common.get("Verbose"):
            result.verbose.extend(ctx.streams.verbose)
        self._emit_errors(ctx.streams.errors, bound.common.get("ErrorAction"), result)
        if failure is not None:
            raise _Failure(failure.record)
