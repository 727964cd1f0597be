"""Bad-input campaign: every bad file, config key, plan file, option and output path is refused through the real
CLI with exit 2, no traceback, a message naming the file (and line) or the option/key, and **no request sent**:
the lab's own request counter (every HTTP request it received) is the same before and after each refusal.

The CLI runs in-process (typer's CliRunner) so that some 250 cases stay fast; a few go through the real entry
point as subprocesses (``python -m provisioner``) to prove no traceback reaches a terminal there either. A
bounded, representative part runs in the default suite; the whole set is marked ``campaign``
(``pytest -m campaign``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from provisioner_lab.run import Lab, running_lab
from typer.testing import CliRunner

from provisioner.cli import app

ROOT = Path(__file__).parent.parent
SERVICE, ADMIN = "svc-codetwo@contoso.com", "sync.admin@contoso.com"
USERS = ("alice.wong@contoso.com", "bob.meyer@contoso.com")
MiB = 1 << 20


@dataclass
class World:
    """The module's lab and files: a good config, users file, saved plan and journal run to break things with."""

    lab: Lab
    root: Path
    config: Path
    users: Path
    plan: Path
    run_id: str

    def path(self, name: str) -> Path:
        return self.root / name


@dataclass(frozen=True)
class Case:
    """One bad input: ``args`` (with ``{config}``, ``{users}``, ``{plan}``, ``{run}`` and ``{root}`` filled in
    from the world), an optional ``setup`` writing files, and what the refusal must name."""

    id: str
    args: tuple[str, ...]
    names: str  # a substring of stderr: the file (and line), the option or the key, formatted like args
    setup: Callable[[World], None] | None = None
    category: str = field(default="", compare=False)


def invoke(world: World, args: list[str]) -> tuple[int, str, BaseException | None]:
    env = {"PROVISIONER_PASSWORD": world.lab.password, "NO_COLOR": "1"}
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stderr, result.exception


def fill(world: World, text: str) -> str:
    return text.format(config=world.config, users=world.users, plan=world.plan, run=world.run_id, root=world.root)


# ------------------------------------------------------------------------------------------------- the world
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bad-inputs")
    with running_lab() as lab:
        config = root / "provisioner.toml"
        config.write_text(lab.config_toml() + f'[trustees]\nservice_account = "{SERVICE}"\n'
                          f'admin_user = "{ADMIN}"\n[reapply]\njournal = "{root / "journal.jsonl"}"\n'
                          "verify_delay_seconds = 0\n", encoding="utf-8")
        users = root / "users.csv"
        users.write_text("PrimarySmtpAddress,Department\n" + "".join(f"{u},Sales\n" for u in USERS), encoding="utf-8")
        plan = root / "grant.plan"
        made = CliRunner().invoke(app, ["plan", "grant", "--out", str(plan), "--config", str(config),
                                        "-m", "carol.diaz"], env={"PROVISIONER_PASSWORD": lab.password})
        assert made.exit_code == 0, made.stderr
        granted = CliRunner().invoke(app, ["grant", "--config", str(config), "-m", "dave.okafor"],
                                     env={"PROVISIONER_PASSWORD": lab.password})
        assert granted.exit_code in (0, 1), granted.stderr
        runs = [json.loads(line)["run_id"] for line in (root / "journal.jsonl").read_text().splitlines()]
        (root / "a-file").write_text("x", encoding="utf-8")
        (root / "a-dir").mkdir()
        os.mkfifo(root / "a-fifo")
        yield World(lab, root, config, users, plan, runs[-1])


# ------------------------------------------------------------------------------------------------- the cases
def _write(name: str, content: str | bytes) -> Callable[[World], None]:
    def setup(world: World) -> None:
        path = world.path(name)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return setup


def _sparse(name: str, size: int) -> Callable[[World], None]:
    def setup(world: World) -> None:
        with world.path(name).open("wb") as handle:
            handle.truncate(size)

    return setup


def _config(name: str, extra: str, *, connection: str = "") -> Callable[[World], None]:
    """A config: the lab's connection (and ``connection`` lines) and the trustees, then ``extra`` (TOML)."""

    def setup(world: World) -> None:
        replaced = {line.split("=")[0].strip() for line in connection.splitlines() if "=" in line}
        lab_lines = [line for line in world.lab.config_toml().splitlines()
                     if line.split("=")[0].strip() not in replaced]
        base = "\n".join(lab_lines) + "\n" + connection
        world.path(name).write_text(base + f'[trustees]\nservice_account = "{SERVICE}"\n' + extra, encoding="utf-8")

    return setup


GRANT = ("grant", "--config", "{config}", "-m", "alice.wong")
COMMANDS: dict[str, tuple[str, ...]] = {
    "grant": GRANT,
    "revoke": ("revoke", "--yes", "--config", "{config}", "-m", "alice.wong"),
    "audit": ("audit", "--config", "{config}", "-m", "alice.wong"),
    "reapply": ("reapply", "--config", "{config}", "-m", "alice.wong"),
    "plan-grant": ("plan", "grant", "--out", "{root}/ok.plan", "--config", "{config}", "-m", "alice.wong"),
    "apply": ("apply", "{plan}", "--config", "{config}"),
    "undo": ("journal", "undo", "{run}", "--yes", "--config", "{config}"),
}
# output options and the commands that take them
OUTPUT_OPTIONS: dict[str, tuple[str, ...]] = {
    "--report": ("grant", "revoke", "audit", "reapply", "plan-grant", "apply", "undo"),
    "--html": ("grant", "revoke", "audit", "reapply", "plan-grant", "apply", "undo"),
    "--profile-list": ("grant", "revoke", "reapply", "apply"),
    "--metrics-file": ("reapply",),
    "--journal": ("reapply",),
    "--lock-file": ("reapply", "apply"),
}
BAD_PATHS: dict[str, str] = {
    "missing-folder": "{root}/no/such/dir/out.txt",
    "directory": "{root}/a-dir",
    "under-a-file": "{root}/a-file/out.txt",
    "fifo": "{root}/a-fifo",
    "empty": "",
}


def output_cases() -> Iterator[Case]:
    for option, commands in OUTPUT_OPTIONS.items():
        for command in commands:
            for problem, path in BAD_PATHS.items():
                if option in ("--journal", "--lock-file") and problem == "missing-folder":
                    continue  # the journal's and lock's folders are the run's to create (docs/inputs.md)
                if option == "--lock-file" and problem == "fifo":
                    continue  # a FIFO takes a file lock like a file: usable
                shown = f"{option} {path or '.'}: " if option != "--journal" or path else "journal .: "
                if option == "--lock-file":  # checked by the lock itself when taken, still before connecting
                    shown = f"{path or '.'}: cannot use the lock file"
                yield Case(f"output-{command}{option}-{problem}", (*COMMANDS[command], option, path), shown,
                           category="output path")
    yield Case("output-dry-run-script-missing", (*GRANT, "--dry-run", "--script", "{root}/none/s.ps1"),
               "--script {root}/none/s.ps1", category="output path")
    yield Case("output-dry-run-script-dir", (*GRANT, "--dry-run", "--script", "{root}/a-dir"), "--script",
               category="output path")
    yield Case("output-plan-out-missing", ("plan", "grant", "--out", "{root}/none/p.plan", "--config", "{config}",
                                           "-m", "alice.wong"), "--out {root}/none/p.plan", category="output path")
    yield Case("output-plan-script-missing", ("plan", "grant", "--out", "{root}/p2.plan", "--script",
                                              "{root}/none/p.ps1", "--config", "{config}", "-m", "alice.wong"),
               "--script {root}/none/p.ps1", category="output path")
    yield Case("output-plan-out-dir", ("plan", "grant", "--out", "{root}/a-dir", "--config", "{config}",
                                       "-m", "alice.wong"),
               "--out {root}/a-dir", category="output path")
    yield Case("output-same-file-twice", (*GRANT, "--report", "{root}/same.out", "--html", "{root}/same.out"),
               "--report and --html", category="output path")
    yield Case("output-report-is-the-journal", (*COMMANDS["reapply"], "--report", "{root}/journal.jsonl"),
               "--report and reapply.journal", category="output path")
    for key, value in (("report", "no/dir/r.json"), ("metrics_file", "no/dir/m.prom"), ("journal", "a-file/j.jsonl"),
                       ("lock_file", "a-dir"), ("report", "a-dir"), ("metrics_file", "a-file/m.prom")):
        name = f"cfg-out-{key}-{value.replace('/', '_')}.toml"
        yield Case(f"output-config-{key}-{value}", ("reapply", "--config", f"{{root}}/{name}", "-m", "alice.wong"),
                   f"{{root}}/{value}: cannot use the lock file" if key == "lock_file" else
                   f"reapply.{key} {{root}}/{value}: ", _config(name, f'[reapply]\n{key} = "{value}"\n'),
                   category="output path")


OPTION_VALUES: tuple[tuple[str, str, str], ...] = (
    ("--port", "0", "--port"), ("--port", "65536", "--port"), ("--port", "-1", "--port"),
    ("--port", "99999999999999999999999", "--port"), ("--port", "abc", "--port"),
    ("--batch-size", "0", "--batch-size"), ("--batch-size", "5001", "--batch-size"),
    ("--batch-size", "-5", "--batch-size"), ("--parallel", "0", "--parallel"), ("--parallel", "17", "--parallel"),
    ("--scheme", "ftp", "--scheme"), ("--scheme", "", "--scheme"), ("--auth", "digest", "--auth"),
    ("--auth", "", "--auth"), ("--mode", "fast", "--mode"), ("--domain-controller", "", "--domain-controller"),
    ("--domain-controller", "dc\x01", "--domain-controller"), ("--server", "", "--server"),
    ("--server", "exch\nevil", "--server"), ("--username", "", "--username"), ("--spn-service", "", "--spn-service"),
    ("--spn-hostname", "", "--spn-hostname"), ("--keytab", "", "--keytab"), ("--principal", "", "--principal"),
    ("--column", "", "--column"), ("--column", 'a"b', "--column"), ("--format", "xml", "--format"),
    ("--mailbox", "j*", "--mailbox"), ("--mailbox", "*", "--mailbox"), ("--mailbox", "", "--mailbox"),
    ("--mailbox", "a\x00b", "--mailbox"), ("--trustee", "svc*", "--trustee"),
    ("--admin-user", "*admin", "--admin-user"),
    ("--service-account", "", "--service-account"), ("--service-account", "x\ty\nz", "--service-account"),
)


def option_cases() -> Iterator[Case]:
    for command in ("grant", "audit", "reapply"):
        for option, value, names in OPTION_VALUES:
            yield Case(f"option-{command}{option}={value!r}", (*COMMANDS[command], option, value), names,
                       category="option")
    yield Case("option-max-changes-negative", (*COMMANDS["reapply"], "--max-changes", "-1"), "--max-changes",
               category="option")
    yield Case("option-max-changes-huge", (*COMMANDS["reapply"], "--max-changes", "10000000001"), "--max-changes",
               category="option")
    yield Case("option-apply-port-0", (*COMMANDS["apply"], "--port", "0"), "--port", category="option")
    yield Case("option-undo-port-0", (*COMMANDS["undo"], "--port", "0"), "--port", category="option")
    yield Case("option-check-port-0", ("check", "--config", "{config}", "--port", "0"), "--port", category="option")
    yield Case("option-check-auth", ("check", "--config", "{config}", "--auth", "x"), "--auth", category="option")


CONFIG_VALUES: tuple[tuple[str, str, str], ...] = (
    ("connection", "port = 0", "connection.port"), ("connection", "port = 65536", "connection.port"),
    ("connection", "port = 99999999999999999999", "connection.port"), ("connection", 'port = "80"', "connection.port"),
    ("connection", "port = 8.0", "connection.port"), ("connection", "port = true", "connection.port"),
    ("connection", "operation_timeout = 0", "connection.operation_timeout"),
    ("connection", "operation_timeout = 9999999999999", "connection.operation_timeout"),
    ("connection", "connection_timeout = -1", "connection.connection_timeout"),
    ("connection", "connection_timeout = 1e300", "connection.connection_timeout"),
    ("connection", "batch_size = 0", "connection.batch_size"), ("connection", "parallel = 99", "connection.parallel"),
    ("connection", 'scheme = "ftp"', "connection.scheme"), ("connection", 'auth = "digest"', "connection.auth"),
    ("connection", 'mode = "x"', "connection.mode"), ("connection", 'backend = "graph"', "connection.backend"),
    ("connection", 'domain_controller = ""', "connection.domain_controller"),
    ("connection", 'path = ""', "connection.path"), ("connection", 'spn_service = ""', "connection.spn_service"),
    ("connection", 'keytab = ""', "connection.keytab"), ("connection", 'principal = ""', "connection.principal"),
    ("connection", 'username = ""', "connection.username"), ("connection", 'ca_bundle = ""', "connection.ca_bundle"),
    ("connection", 'keyring_service = ""', "connection.keyring_service"),
    ("connection", 'server = "a\\u0000b"', "connection.server"),
    ("connection", "fast_wire = 1", "connection.fast_wire"),
    ("connection", 'preamble = "x\\u202Ey"', "connection.preamble"), ("connection", "srever = 1", "connection.srever"),
    ("reapply", "max_changes = -1", "reapply.max_changes"), ("reapply", "max_changes = 1e9", "reapply.max_changes"),
    ("reapply", "verify_delay_seconds = inf", "reapply.verify_delay_seconds"),
    ("reapply", "verify_delay_seconds = nan", "reapply.verify_delay_seconds"),
    ("reapply", "verify_delay_seconds = 1e308", "reapply.verify_delay_seconds"),
    ("reapply", "retry_attempts = 0", "reapply.retry_attempts"),
    ("reapply", "retry_attempts = 100000", "reapply.retry_attempts"),
    ("reapply", "retry_base_seconds = -0.5", "reapply.retry_base_seconds"),
    ("reapply", "retry_max_seconds = 1e20", "reapply.retry_max_seconds"), ("reapply", 'report = ""', "reapply.report"),
    ("reapply", 'journal = ""', "reapply.journal"), ("reapply", "journal = 1", "reapply.journal"),
    ("reapply", "verify = \"yes\"", "reapply.verify"),
    ("exo", "page_size = 0", "exo.page_size"), ("exo", "timeout = 0", "exo.timeout"),
    ("exo", "timeout = 86400000", "exo.timeout"), ("exo", "retry_attempts = 21", "exo.retry_attempts"),
    ("exo", 'cloud = "china"', "exo.cloud"), ("exo", 'host = "http://x"', "exo.host"),
    ("exo", 'tenant = ""', "exo.tenant"), ("targets", 'mailboxes = ["j*"]', "targets.mailboxes[1]"),
    ("targets", 'mailboxes = ["ok", "*"]', "targets.mailboxes[2]"),
    ("targets", 'mailboxes = [""]', "targets.mailboxes[1]"), ("targets", 'exclude = ["a*"]', "targets.exclude[1]"),
    ("targets", 'column = ""', "targets.column"), ("targets", "column = 3", "targets.column"),
    ("targets", 'users_file = ""', "targets.users_file"), ("targets", 'mailboxes = "alice"', "targets.mailboxes"),
    ("trustees", 'admin_user = "adm*"', "trustees.admin_user"), ("trustees", 'extra = ["x*"]', "trustees.extra[1]"),
    ("trustees", '[[trustees.extra]]\nidentity = "*"', "trustees.extra[1].identity"),
    ("trustees", 'admin_user = ""', "trustees.admin_user"),
)


def config_cases() -> Iterator[Case]:
    for number, (section, line, key) in enumerate(CONFIG_VALUES):
        name = f"cfg-{number}.toml"
        if section == "trustees":
            body = f'[connection]\nserver = "127.0.0.1"\n[trustees]\nservice_account = "{SERVICE}"\n{line}\n'
            setup = _write(name, body)
        elif section == "connection":
            setup = _config(name, "", connection=line + "\n")
        else:
            setup = _config(name, f"[{section}]\n{line}\n")
        for command in ("grant", "reapply"):
            args = (command, "--config", f"{{root}}/{name}")
            if section != "targets":
                args = (*args, "-m", "alice.wong")
            yield Case(f"config-{command}-{section}-{line}", args, key, setup, category="config key")
    files: tuple[tuple[str, Callable[[World], None] | None, str], ...] = (
        ("cfg-not-utf8.toml", _write("cfg-not-utf8.toml", b"[connection]\nserver = \"\xff\"\n"), ""),
        ("cfg-syntax.toml", _write("cfg-syntax.toml", "[connection\n"), ""),
        ("cfg-huge.toml", _sparse("cfg-huge.toml", 2 * MiB), ""),
        ("cfg-big-text.toml", _write("cfg-big-text.toml", "# " + "x" * MiB + "\n"), ""),
        ("a-fifo", None, ""), ("a-dir", None, ""), ("no-such.toml", None, ""),
        ("cfg-utf32.toml", _write("cfg-utf32.toml", "[connection]\n".encode("utf-32")), ""),
        ("cfg-deep.toml", _write("cfg-deep.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n"), ""),
        ("cfg-unknown-section.toml", _write("cfg-unknown-section.toml", "[conection]\nserver = \"x\"\n"), "conection"),
    )
    for name, setup, names in files:
        yield Case(f"config-file-{name}", ("grant", "--config", f"{{root}}/{name}", "-m", "alice.wong"),
                   names or f"{{root}}/{name}", setup, category="config file")
    yield Case("config-file-dev-zero", ("grant", "--config", "/dev/zero", "-m", "alice.wong"), "/dev/zero",
               category="config file")
    yield Case("config-file-dev-null-dir", ("grant", "--config", "/dev", "-m", "alice.wong"), "/dev",
               category="config file")


USERS_FILES: tuple[tuple[str, str | bytes, str], ...] = (
    ("u-quoted-unknown.csv", '"Name","WindowsEmailAddress"\n"Sam","sam@contoso.com"\n', ":1"),
    ("u-unknown-comma.csv", "Name,Department\nSam,Sales\n", ":1"),
    ("u-unknown-semicolon.csv", "DisplayName;Email\nSam;sam@contoso.com\n", ":1"),
    ("u-unknown-tab.csv", "DisplayName\tEmail\nSam\tsam@contoso.com\n", ":1"),
    ("u-quoted-one.csv", '"Mailboxes"\n"alice"\n', ":1"),
    ("u-comment-then-unknown.csv", "# export\n\nName,Title\nSam,Boss\n", ":3"),
    ("u-stray-quote.csv", 'Identity,Notes\nalice,ok\nbo"b,x\n', ":3"),
    ("u-stray-quote-other-col.csv", 'Identity,Notes\nalice,5" screen\n', ":2"),
    ("u-stray-quote-header.csv", 'Identity,No"tes\nalice,x\n', ":1"),
    ("u-space-before-quote.csv", 'Identity;Notes\nalice; "x"\n', ":2"),
    ("u-stray-after-multiline.csv", 'Identity,Notes\nalice,"two\nlines"\nbob,a"b\n', ":4"),
    ("u-wildcard-plain.txt", "alice\nj*\n", ":2"),
    ("u-wildcard-csv.csv", "Identity\nalice\n*\n", ":3"),
    ("u-wildcard-middle.txt", "a*ce@contoso.com\n", ":1"),
    ("u-unterminated.csv", 'Identity\n"alice\n', ":2"),
    ("u-after-quote.csv", 'Identity\n"alice"x\n', ":2"),
    ("u-short-row.csv", "Identity,Notes\nalice\n", ":2"),
    ("u-long-row.csv", "Identity,Notes\nalice,x,y\n", ":2"),
    ("u-empty-cell.csv", "Identity,Notes\n,x\n", ":2"),
    ("u-two-identity.csv", "Identity,identity\nalice,bob\n", ":1"),
    ("u-bad-utf8.txt", b"alice\n\xff\xfe\xfd\n", ":2"),
    ("u-utf32.txt", "alice\n".encode("utf-32"), ":1"),
    ("u-nul.txt", b"alice\nbo\x00b\n", ":2"),
    ("u-control.txt", "alice\nbo\x07b\n", ":2"),
    ("u-ambiguous-delim.csv", "Identity,Alias;Identity\nx\n", ":1"),
)


def users_cases() -> Iterator[Case]:
    for name, content, line in USERS_FILES:
        for command in ("grant", "audit"):
            yield Case(f"users-{command}-{name}", (*COMMANDS[command][:3], "-u", f"{{root}}/{name}"),
                       f"{{root}}/{name}{line}", _write(name, content), category="users file")
    for name, setup in (("a-fifo", None), ("a-dir", None), ("no-such.csv", None),
                        ("u-huge.csv", _sparse("u-huge.csv", 65 * MiB))):
        yield Case(f"users-file-{name}", (*COMMANDS["grant"][:3], "-u", f"{{root}}/{name}"), f"{{root}}/{name}",
                   setup, category="users file")
    yield Case("users-file-dev-zero", (*COMMANDS["grant"][:3], "-u", "/dev/zero"), "/dev/zero", category="users file")
    yield Case("users-column-missing", (*COMMANDS["grant"][:3], "-u", "{users}", "--column", "Email"),
               "{users}:1", category="users file")
    yield Case("users-column-plain-list", (*COMMANDS["grant"][:3], "-u", "{root}/u-plain.txt", "--column", "Email"),
               "{root}/u-plain.txt:1", _write("u-plain.txt", "alice\n"), category="users file")
    yield Case("users-column-config", ("grant", "--config", "{root}/cfg-col.toml", "-u", "{users}"), "{users}:1",
               _config("cfg-col.toml", '[targets]\ncolumn = "Email"\n'), category="users file")
    yield Case("users-config-file-wildcard", ("grant", "--config", "{root}/cfg-uf.toml"), "{root}/u-wild.txt:1",
               lambda world: (_write("u-wild.txt", "al*\n")(world),
                              _config("cfg-uf.toml", '[targets]\nusers_file = "u-wild.txt"\n')(world))[0],
               category="users file")


def _plan_edit(name: str, edit: Callable[[dict[str, object]], None], *, keep_digest: bool = False
               ) -> Callable[[World], None]:
    def setup(world: World) -> None:
        document = json.loads(world.plan.read_text(encoding="utf-8"))
        edit(document)
        if not keep_digest:
            from provisioner.runs.planfile import digest_of

            body = document["body"]
            assert isinstance(body, dict)
            document["digest"] = digest_of(body)
        world.path(name).write_text(json.dumps(document), encoding="utf-8")

    return setup


def _body(**changes: object) -> Callable[[dict[str, object]], None]:
    def edit(document: dict[str, object]) -> None:
        body = document["body"]
        assert isinstance(body, dict)
        body.update(changes)

    return edit


def _endpoint(**changes: object) -> Callable[[dict[str, object]], None]:
    def edit(document: dict[str, object]) -> None:
        body = document["body"]
        assert isinstance(body, dict)
        body["endpoint"].update(changes)

    return edit


def _wildcard_mailbox(document: dict[str, object]) -> None:
    body = document["body"]
    assert isinstance(body, dict)
    body["changes"][0]["mailbox"] = "c*"


def plan_cases() -> Iterator[Case]:
    plans: tuple[tuple[str, Callable[[World], None] | None], ...] = (
        ("p-empty.plan", _write("p-empty.plan", "")),
        ("p-not-json.plan", _write("p-not-json.plan", "{not json")),
        ("p-foreign.plan", _write("p-foreign.plan", '{"format": "terraform"}')),
        ("p-list.plan", _write("p-list.plan", "[1, 2]")),
        ("p-bad-utf8.plan", _write("p-bad-utf8.plan", b'{"format": "\xff"}')),
        ("p-deep.plan", _write("p-deep.plan", "[" * 100000 + "]" * 100000)),
        ("p-edited.plan", _plan_edit("p-edited.plan", _body(batch_size=7), keep_digest=True)),
        ("p-batch.plan", _plan_edit("p-batch.plan", _body(batch_size=0))),
        ("p-batch-huge.plan", _plan_edit("p-batch-huge.plan", _body(batch_size=10**30))),
        ("p-action.plan", _plan_edit("p-action.plan", _body(action="audit"))),
        ("p-action-unknown.plan", _plan_edit("p-action-unknown.plan", _body(action="delete-all"))),
        ("p-port.plan", _plan_edit("p-port.plan", _endpoint(port=0))),
        ("p-mode.plan", _plan_edit("p-mode.plan", _endpoint(mode="raw"))),
        ("p-no-body.plan", _write("p-no-body.plan", '{"format": "provisioner-plan/1"}')),
        ("p-changes-type.plan", _plan_edit("p-changes-type.plan", _body(changes="all"))),
        ("p-trustees-type.plan", _plan_edit("p-trustees-type.plan", _body(trustees=[{"identity": 3}]))),
        ("p-huge.plan", _sparse("p-huge.plan", 129 * MiB)),
        ("p-wildcard.plan", _plan_edit("p-wildcard.plan", _wildcard_mailbox)),
        ("p-repeated-key.plan", _write("p-repeated-key.plan", '{"format": "a", "format": "b"}')),
        ("a-fifo", None), ("a-dir", None), ("no-such.plan", None),
    )
    for name, setup in plans:
        yield Case(f"plan-file-{name}", ("apply", f"{{root}}/{name}", "--config", "{config}", "--yes"),
                   f"{{root}}/{name}", setup, category="plan file")
    for name, journal in (("journal-fifo", "{root}/a-fifo"), ("journal-dir", "{root}/a-dir"),
                          ("journal-device", "/dev/zero")):
        yield Case(f"{name}-list", ("journal", "list", "--journal", journal), f"--journal {journal}: ",
                   category="journal file")
        yield Case(f"{name}-undo", ("journal", "undo", "{run}", "--yes", "--config", "{config}", "--journal",
                                    journal), f"--journal {journal}: ", category="journal file")
    yield Case("plan-file-dev-zero", ("apply", "/dev/zero", "--config", "{config}"), "/dev/zero", category="plan file")
    yield Case("plan-digest-other", ("apply", "{plan}", "--config", "{config}", "--expect-digest", "sha256:00"),
               "{plan}", category="plan file")


CASES: list[Case] = [*output_cases(), *option_cases(), *config_cases(), *users_cases(), *plan_cases()]
# The default suite's bounded part: every category, and a spread of cases within each (every fifth).
DEFAULT_CASES = [case for index, case in enumerate(CASES) if index % 5 == 0]


def _refused_before_sending(world: World, case: Case) -> None:
    if case.setup is not None:
        case.setup(world)
    before = world.lab.server.counters["http_requests"]
    code, stderr, exception = invoke(world, [fill(world, arg) for arg in case.args])
    after = world.lab.server.counters["http_requests"]
    assert exception is None or isinstance(exception, SystemExit), f"{case.id}: {exception!r}"
    assert "Traceback" not in stderr, case.id
    assert code == 2, f"{case.id}: exit {code}: {stderr}"
    assert after == before, f"{case.id}: {after - before} requests sent before the refusal: {stderr}"
    assert fill(world, case.names) in stderr, f"{case.id}: {stderr!r} does not name {fill(world, case.names)!r}"


def test_the_campaign_has_at_least_200_cases_in_every_category() -> None:
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)
    categories = {case.category for case in CASES}
    assert categories == {"output path", "option", "config key", "config file", "users file", "plan file",
                          "journal file"}
    assert {case.category for case in DEFAULT_CASES} == categories


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_before_anything_is_sent(world: World, case: Case) -> None:
    _refused_before_sending(world, case)


@pytest.mark.campaign
@pytest.mark.parametrize("case", [case for case in CASES if case not in DEFAULT_CASES], ids=lambda case: case.id)
def test_bad_input_campaign(world: World, case: Case) -> None:
    _refused_before_sending(world, case)


SUBPROCESS_CASES = ("output-grant--report-missing-folder", "option-grant--port='0'", "config-file-dev-zero",
                    "users-grant-u-quoted-unknown.csv", "plan-file-a-fifo")


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_the_real_entry_point_refuses_without_a_traceback(world: World, case_id: str) -> None:
    (case,) = [case for case in CASES if case.id == case_id]
    if case.setup is not None:
        case.setup(world)
    before = world.lab.server.counters["http_requests"]
    env = {name: value for name, value in os.environ.items() if name != "PROVISIONER_PASSWORD"}
    env["PROVISIONER_PASSWORD"] = world.lab.password
    done = subprocess.run([sys.executable, "-m", "provisioner", *(fill(world, arg) for arg in case.args)],
                          capture_output=True, text=True, cwd=world.root, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "\nerror: " in "\n" + done.stderr
    assert fill(world, case.names) in done.stderr
    assert world.lab.server.counters["http_requests"] == before
