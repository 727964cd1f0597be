"""The one cmdlet table (provisioner/powershell/cmdlets.py) is what the tool really sends, no more and no less.

A lab engine records every command that reaches it (cmdlet, parameter names, whether it was piped) and every
GET_COMMAND_METADATA request, while the real CLI runs grant, audit, revoke, journal undo, reapply (OU, filter and
group selectors, prune), apply of a saved plan and check, with a pinned domain controller; the same for Exchange
Online's REST endpoint. Each view derived from the table is compared with that traffic, with the official cmdlet
reference the lab ships (exchange-cmdlets.json) and with the step builders."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from provisioner_lab.api import MetadataQuery, MetadataResult, PipelineResult, Statement
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.exo.run import running_exo_lab
from provisioner_lab.run import running_lab

from provisioner.domain import planner
from provisioner.domain.model import Action, Identity, Trustee
from provisioner.engine import journal
from provisioner.powershell import cmdlets, steps
from provisioner.powershell.cmdlets import TABLE, Precheck, StepAction, When
from provisioner.runs import needs
from provisioner.transport.exo.runner import exo_facts
from provisioner.transport.facts import NEEDED

REFERENCE = json.loads((Path(__file__).parent.parent / "lab" / "provisioner_lab" / "data" / "exchange-cmdlets.json")
                       .read_text(encoding="utf-8"))["cmdlets"]
ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
DC = "dc01.contoso.com"
RUN_ID = re.compile(r"\brun (\S+) recorded")


@dataclass(frozen=True)
class Sent:
    """One command as the lab received it."""

    cmdlet: str
    parameters: frozenset[str]
    piped: bool  # it took pipeline input (after another command of its statement, or the pipeline's input)


class Recording(ExchangeEngine):
    """The lab engine, noting what reaches it (the server calls it from several threads)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []
        self.asked: list[frozenset[str]] = []
        self.recording = threading.Lock()

    def run(self, statements: list[Statement], pipeline_input: list[Any], *, user: str | None) -> PipelineResult:
        with self.recording:
            for index, statement in enumerate(statements):
                for position, command in enumerate(statement.commands):
                    if not command.is_script:
                        piped = position > 0 or (index == 0 and bool(pipeline_input))
                        names = frozenset(str(a.name) for a in command.arguments if a.name is not None)
                        self.sent.append(Sent(command.name, names, piped))
        return super().run(statements, pipeline_input, user=user)

    def command_metadata(self, query: MetadataQuery, *, user: str | None) -> MetadataResult:
        with self.recording:
            self.asked.append(frozenset(query.names))
        return super().command_metadata(query, user=user)

    def take(self) -> tuple[list[Sent], list[frozenset[str]]]:
        with self.recording:
            taken = (self.sent[:], self.asked[:])
            self.sent.clear()
            self.asked.clear()
        return taken


def recording_engine() -> Recording:
    engine = Recording.from_seed(None)
    assert isinstance(engine, Recording)
    return engine


@dataclass(frozen=True)
class Run:
    """One CLI run: what it was, its exit code and what reached the lab."""

    verb: str
    action: Action | None  # None: check
    exit_code: int
    stderr: str
    sent: tuple[Sent, ...]
    asked: tuple[frozenset[str], ...]


def _cli(engine: Recording, work: Path, verb: str, action: Action | None, *args: str) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
    env.update(PROVISIONER_PASSWORD="Lab-Passw0rd!", PYTHONIOENCODING="utf-8", XDG_STATE_HOME=str(work / "state"))
    done = subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, cwd=work,
                          env=env, timeout=180, stdin=subprocess.DEVNULL)
    sent, asked = engine.take()
    return Run(verb, action, done.returncode, done.stderr, tuple(sent), tuple(asked))


def _config(work: Path, connection: str, targets: Sequence[str], selectors: bool) -> Path:
    config = work / "provisioner.toml"
    selector_lines = ('[[targets.selector]]\norganizational_unit = "contoso.com/Sales"\n'
                      '[[targets.selector]]\nfilter = "Department -eq \'Finance\'"\n'
                      '[[targets.selector]]\ngroup = "Sales Team"\n') if selectors else ""
    config.write_text(connection + f'[trustees]\nadmin_user = "{ADMIN}"\nservice_account = "{SERVICE}"\n'
                      f"[targets]\nmailboxes = {json.dumps(list(targets))}\n" + selector_lines
                      + f'[reapply]\njournal = "{work / "journal.jsonl"}"\nverify_delay_seconds = 0\n',
                      encoding="utf-8")
    return config


@dataclass(frozen=True)
class Journeys:
    runs: list[Run]
    work: Path

    def one(self, verb: str) -> Run:
        return next(run for run in self.runs if run.verb == verb)


def _ran(runs: list[Run], work: Path) -> Journeys:
    for run in runs:
        assert run.exit_code in (0, 1), f"{run.verb}: exit {run.exit_code}\n{run.stderr}"
        assert run.sent, f"{run.verb} sent nothing"
    return Journeys(runs, work)


@pytest.fixture(scope="module")
def onprem(tmp_path_factory: pytest.TempPathFactory) -> Journeys:
    """The journeys on Exchange 2019 (command mode), every run pinned to a domain controller."""
    work = tmp_path_factory.mktemp("onprem")
    engine = recording_engine()
    with running_lab(engine=engine) as lab:
        connection = lab.config_toml() + f'domain_controller = "{DC}"\n'
        config = str(_config(work, connection, ["alice.wong@contoso.com", "bob.meyer@contoso.com"], True))
        c = ["--config", config]
        runs = [_cli(engine, work, "grant", Action.GRANT, "grant", *c, "-m", "alice.wong@contoso.com",
                     "-m", "carol.diaz@contoso.com")]
        runs.append(_cli(engine, work, "audit", Action.AUDIT, "audit", *c, "-m", "alice.wong@contoso.com"))
        runs.append(_cli(engine, work, "revoke", Action.REVOKE, "revoke", "--yes", *c, "-m", "alice.wong@contoso.com"))
        undone = RUN_ID.findall(runs[-1].stderr)
        assert undone, runs[-1].stderr
        runs.append(_cli(engine, work, "undo", Action.UNDO, "journal", "undo", undone[0], "--yes", *c))
        runs.append(_cli(engine, work, "plan", Action.REVOKE, "plan", "revoke", *c, "-m", "alice.wong@contoso.com",
                         "--out", str(work / "revoke.plan")))
        runs.append(_cli(engine, work, "apply", Action.REVOKE, "apply", str(work / "revoke.plan"), "--yes", *c))
        runs.append(_cli(engine, work, "reapply", Action.REAPPLY, "reapply", "--prune", "--prune-unowned", "--yes",
                         *c))
        runs.append(_cli(engine, work, "check", None, "check", *c, "--trustee", "Sales Team"))
    return _ran(runs, work)


@pytest.fixture(scope="module")
def exo(tmp_path_factory: pytest.TempPathFactory) -> Journeys:
    """Grant, audit, revoke, reapply and check over Exchange Online's REST endpoint."""
    work = tmp_path_factory.mktemp("exo")
    engine = recording_engine()
    with running_exo_lab(engine=engine) as lab:
        config = str(_config(work, lab.config_toml(retry_base_seconds=0.01),
                             ["alice.wong@contoso.com", "bob.meyer@contoso.com"], True))
        c = ["--config", config]
        runs = [
            _cli(engine, work, "grant", Action.GRANT, "grant", *c),
            _cli(engine, work, "audit", Action.AUDIT, "audit", *c),
            _cli(engine, work, "revoke", Action.REVOKE, "revoke", "--yes", *c, "-m", "alice.wong@contoso.com"),
            _cli(engine, work, "reapply", Action.REAPPLY, "reapply", "--prune", "--prune-unowned", "--yes", *c),
            _cli(engine, work, "check", None, "check", *c, "--trustee", "Sales Team"),
        ]
    return _ran(runs, work)


def _pairs(runs: Sequence[Run]) -> set[tuple[str, str]]:
    return {(sent.cmdlet, name) for run in runs for sent in run.sent for name in sent.parameters}


def _probe_parameters(exo: bool) -> set[tuple[str, str]]:
    return {(name, parameter) for name, probe in cmdlets.probes(exo) for parameter, _ in probe.parameters}


def _built(run: Run) -> list[Sent]:
    """The commands a run built with the step builders (check's probes are built from the table's probes)."""
    probed = {name for name, _ in cmdlets.probes()} if run.action is None else set()
    return [sent for sent in run.sent if sent.cmdlet not in probed]


def test_every_command_sent_on_premises_is_in_the_table_and_every_table_entry_is_sent(onprem: Journeys) -> None:
    table = {(cmdlet.name, p.name) for cmdlet in TABLE for p in cmdlet.parameters}
    runs = [run for run in onprem.runs if run.action is not None]
    check = [run for run in onprem.runs if run.action is None]
    assert _pairs(runs) - table == set()  # what the runs send is in the table
    assert _pairs(check) - table - _probe_parameters(exo=False) == set()  # check: the table and its probes
    assert table - _pairs(onprem.runs) == set()  # nothing in the table that no run sends
    assert {sent.cmdlet for run in onprem.runs for sent in run.sent} == {cmdlet.name for cmdlet in TABLE}


def test_every_prechecked_command_carries_what_a_run_is_refused_without(onprem: Journeys) -> None:
    """Each step (a per-(mailbox, trustee) read, grant or revoke) carries exactly the parameters ``required`` checks
    before the run sends anything (-Identity comes from the pipeline when the step is piped)."""
    seen: set[str] = set()
    for run in onprem.runs:
        if run.action is None:
            continue
        required = needs.required(run.action, steps.StepOptions(domain_controller=DC), piping=True)
        for sent in run.sent:
            cmdlet = cmdlets.named(sent.cmdlet)
            if cmdlet.precheck is Precheck.ALWAYS:
                assert sent.parameters == required[cmdlet.name] - ({"Identity"} if sent.piped else set()), run.verb
                seen.add(cmdlet.name)
            elif cmdlet.precheck is Precheck.PIPING and sent.piped:  # the lookup heading a piped shape
                assert sent.parameters == required[cmdlet.name], run.verb
                seen.add(cmdlet.name)
    assert seen == {cmdlet.name for cmdlet in TABLE if cmdlet.precheck is not Precheck.NEVER}


def test_each_parameter_is_sent_when_the_table_says(onprem: Journeys) -> None:
    """EVERY: on each command (but a piped -Identity); DOMAIN_CONTROLLER: on each command of these pinned runs;
    AUTOMAPPING: on each grant (Exchange 2019 has it); SELECTOR: only by reapply (the selectors); SOME: on some
    commands of its cmdlet, not all."""
    commands = [(run, sent) for run in onprem.runs for sent in _built(run)]
    for cmdlet in TABLE:
        mine = [(run, sent) for run, sent in commands if sent.cmdlet == cmdlet.name]
        assert mine, cmdlet.name
        for parameter in cmdlet.parameters:
            carrying = [(run, sent) for run, sent in mine if parameter.name in sent.parameters]
            where = (cmdlet.name, parameter.name)
            if parameter.when is When.EVERY:
                assert all(parameter.name in sent.parameters or (sent.piped and parameter.name == "Identity")
                           for _, sent in mine), where
            elif parameter.when in (When.DOMAIN_CONTROLLER, When.AUTOMAPPING, When.PROJECTION):
                assert len(carrying) == len(mine), where
            elif parameter.when is When.SELECTOR:
                assert carrying and {run.action for run, _ in carrying} == {Action.REAPPLY}, where
            else:
                assert 0 < len(carrying) < len(mine), where


def test_each_run_reads_the_metadata_of_what_it_may_send_and_sends_only_that(onprem: Journeys) -> None:
    for run in onprem.runs:
        (asked,) = run.asked  # one GET_COMMAND_METADATA per session
        if run.action is None:
            assert asked == set(NEEDED) == {cmdlet.name for cmdlet in TABLE if cmdlet.runs}
            continue
        assert asked == set(needs.cmdlets(run.action)), run.verb
        assert {sent.cmdlet for sent in run.sent} <= asked, run.verb
    for action in Action:  # and no run asks for more than its kind of run sends (undo: the inverses it needs)
        sent = {sent.cmdlet for run in onprem.runs if run.action is action for sent in run.sent}
        assert sent <= set(needs.cmdlets(action)) if action is Action.UNDO else sent == set(needs.cmdlets(action))


def test_exchange_online_gets_only_its_table(exo: Journeys) -> None:
    commands = cmdlets.exo_commands()
    for run in exo.runs:
        assert run.asked == ()  # no Get-Command over REST
        probes = _probe_parameters(exo=True) if run.action is None else set()
        for sent in run.sent:
            assert sent.cmdlet in commands, (run.verb, sent)
            extra = {(sent.cmdlet, name) for name in sent.parameters if name.casefold() not in commands[sent.cmdlet]}
            assert extra <= probes, (run.verb, sent)
    used = {(cmdlet, name.casefold()) for cmdlet, name in _pairs(exo.runs)}
    assert {(cmdlet, name) for cmdlet, names in commands.items() for name in names} - used == set()


def test_the_exo_view_is_the_tables_exo_subset_and_agrees_with_the_cmdlet_reference() -> None:
    facts = exo_facts()
    assert facts.commands == cmdlets.exo_commands()
    for cmdlet in TABLE:
        if cmdlet is cmdlets.SELECT:  # PowerShell's own, not in Exchange's reference; REST has none
            assert not cmdlet.exo and cmdlet.name not in REFERENCE
            continue
        documented = REFERENCE[cmdlet.name]["parameters"]
        assert cmdlet.exo == REFERENCE[cmdlet.name]["products"]["exchange_online"], cmdlet.name
        for parameter in cmdlet.parameters:
            online = documented[parameter.name]["products"]["exchange_online"]
            assert parameter.exo == online, (cmdlet.name, parameter.name)
            assert facts.has_parameter(cmdlet.name, parameter.name) == online, (cmdlet.name, parameter.name)
        for probe in (cmdlet.probe, cmdlet.exo_probe):
            probed = {name for name, _ in probe.parameters} if probe is not None else set()
            assert probed <= set(documented), (cmdlet.name, probed - set(documented))


@pytest.mark.parametrize("options", [steps.StepOptions(domain_controller=dc, automapping=automapping)
                                     for dc, automapping in itertools.product((None, DC), (False, True))])
def test_the_step_builders_send_the_tables_parameters_in_its_order(options: steps.StepOptions) -> None:
    mailbox, trustee = Identity("alice.wong@contoso.com"), Trustee(Identity(ADMIN), False)
    built = [*steps.changes(planner.plan(Action.GRANT, [mailbox], [trustee], None), options),
             *steps.changes(planner.plan(Action.REVOKE, [mailbox], [trustee], None), options),
             steps.read(mailbox, trustee, options)]
    for step in built:
        cmdlet = cmdlets.named(str(step.cmdlet))
        sent = cmdlet.sent(domain_controller=options.domain_controller is not None, automapping=options.automapping)
        assert [str(p.name) for p in step.parameters] == [p.name for p in cmdlet.parameters if p.name in sent]
        assert step.action is cmdlet.action
    assert {step.action for step in built} == {StepAction.READ, StepAction.GRANT, StepAction.REVOKE}


def test_journal_inverses_round_trip() -> None:
    for action in (StepAction.GRANT, StepAction.REVOKE):
        undo = cmdlets.inverse_of(action.value)
        assert undo.action is not None and undo.action is not action and undo.action is not StepAction.READ
        assert cmdlets.inverse_of(undo.action.value).action is action
        record = journal.inverse(action.value, "m", "t", True)
        assert record["cmdlet"] == undo.name
        assert ("automapping" in record) == (undo.parameter("AutoMapping") is not None)


def test_the_journal_names_the_inverse_the_undo_sends(onprem: Journeys) -> None:
    """The revoke's journal lines name their inverse; the undo of that run sends just that changing cmdlet, and
    its own lines name the cmdlet the revoke sent: the inverse of the inverse."""
    revoke, undo = onprem.one("revoke"), onprem.one("undo")
    changing = {cmdlet.name for cmdlet in TABLE if cmdlet.action in (StepAction.GRANT, StepAction.REVOKE)}
    lines = [json.loads(line) for line in (onprem.work / "journal.jsonl").read_text(encoding="utf-8").splitlines()]
    revoked = RUN_ID.findall(revoke.stderr)[0]
    (undone,) = {line["run_id"] for line in lines if line["run_id"].startswith(f"undo-{revoked}")}

    def inverses(run_id: str) -> set[str]:
        return {line["inverse"]["cmdlet"] for line in lines if line["run_id"] == run_id and line["kind"] == "change"}

    assert inverses(revoked) == {sent.cmdlet for sent in undo.sent} & changing == {"Add-MailboxPermission"}
    assert inverses(undone) == {sent.cmdlet for sent in revoke.sent} & changing == {"Remove-MailboxPermission"}


def test_journal_lines_written_before_the_table_read_the_same() -> None:
    """The inverse a journal line records is spelled as before (journals written earlier stay comparable)."""
    assert list(journal.inverse("revoke", "m", "t", False).items()) == [
        ("cmdlet", "Add-MailboxPermission"), ("identity", "m"), ("user", "t"), ("automapping", False)]
    assert list(journal.inverse("grant", "m", "t", True).items()) == [
        ("cmdlet", "Remove-MailboxPermission"), ("identity", "m"), ("user", "t")]
