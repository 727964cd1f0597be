"""One validator for the config file and the options, the output-path rule, regular input files, strict users files.

Unit level: :mod:`provisioner.inputs.schema` (the same sentence for ``connection.port`` and ``--port``,
property-tested),
:mod:`provisioner.inputs.output_paths` (each rule of the output-path check, on real files),
:mod:`provisioner.inputs.files`
(FIFO, device, directory, size limits: refused without blocking or reading), and the users-file rules of issue 18
(a CSV-looking header without an identity column, ``--column``, stray quotes, wildcards).
"""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.cli.common import check_options
from provisioner.errors import InputError
from provisioner.inputs.config import Connection, ExoSettings, RunSettings, load_config
from provisioner.inputs.files import open_regular, read_regular
from provisioner.inputs.identity import WILDCARD_ADVICE
from provisioner.inputs.output_paths import check_outputs
from provisioner.inputs.schema import problem, specs
from provisioner.inputs.users import collect_targets, looks_like_header, read_users_file
from tests.hypothesis_profiles import proof_settings


def error(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(InputError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# ------------------------------------------------------------------------------------------------ the schema
def test_every_setting_has_help_and_numbers_have_both_bounds() -> None:
    for cls in (Connection, ExoSettings, RunSettings):
        for spec in specs(cls).values():
            assert spec.rule.help, f"{cls.__name__}.{spec.name} has no help sentence"
            if spec.kind in (int, float):
                assert spec.rule.low is not None and spec.rule.high is not None, spec.name


def test_choices_come_from_the_literal_types() -> None:
    table = specs(Connection)
    assert table["scheme"].choices == ("http", "https")
    assert "ntlm" in table["auth"].choices and table["mode"].choices == ("command", "script")
    assert specs(ExoSettings)["cloud"].choices == ("worldwide", "gcchigh", "dod")


NUMERIC_OPTIONS = ("port", "batch_size", "parallel", "operation_timeout", "connection_timeout")


@proof_settings(0.5)
@given(name=st.sampled_from(NUMERIC_OPTIONS), value=st.integers(min_value=-(10**30), max_value=10**30))
def test_an_option_and_its_config_key_are_judged_alike(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                       value: int) -> None:
    path = tmp_path_factory.mktemp("same") / "c.toml"
    path.write_text(f"[connection]\n{name} = {value}\n", encoding="utf-8")
    try:
        load_config(path)
        from_file = None
    except InputError as exc:
        from_file = str(exc).removeprefix(f"{path}: connection.{name}: ")
    try:
        check_options(Connection, **{name: value})
        from_option = None
    except InputError as exc:
        from_option = str(exc).removeprefix(f"--{name.replace('_', '-')}: ")
    assert from_file == from_option
    spec = specs(Connection)[name]
    assert spec.rule.low is not None and spec.rule.high is not None
    assert (from_file is None) == (spec.rule.low <= value <= spec.rule.high)


def test_huge_and_non_finite_numbers_are_refused_by_the_schema() -> None:
    delay = specs(RunSettings)["verify_delay_seconds"]
    assert problem(delay, float("inf")) == "must be a finite number, not inf"
    assert problem(delay, float("nan")) == "must be a finite number, not nan"
    assert problem(delay, 1e308) == "1e+308 is not between 0 and 3600"
    huge = problem(specs(Connection)["operation_timeout"], 10**4000)
    assert huge is not None and "digits" in huge and len(huge) < 100  # the number is not echoed whole


def test_empty_strings_are_refused_except_where_empty_means_something() -> None:
    assert problem(specs(Connection)["domain_controller"], "") == "must not be empty"
    assert problem(specs(Connection)["preamble"], "") is None
    with pytest.raises(InputError, match=r"^--domain-controller: must not be empty$"):
        check_options(Connection, domain_controller="")


# ------------------------------------------------------------------------------------------- output paths
def test_output_rule_each_problem_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    cases = {
        tmp_path / "missing" / "r.json": "the folder",
        tmp_path: "is a directory",
        tmp_path / "file" / "r.json": "is a file, not a folder",
        tmp_path / "fifo": "is a named pipe (FIFO)",
        Path(""): "an empty path means the current folder",
    }
    for path, expected in cases.items():
        message = error(check_outputs, [("--report", path)])
        assert message.startswith(f"--report {path}: ") and expected in message and "nothing was sent" in message


def test_output_check_leaves_nothing_behind_and_creates_no_folder(tmp_path: Path) -> None:
    check_outputs([("--report", tmp_path / "r.json"), ("--html", tmp_path / "r.html")],
                  journal=tmp_path / "j.jsonl", lock=tmp_path / "j.jsonl.lock")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="does not exist"):
        check_outputs([("--report", tmp_path / "reports" / "r.json")])
    # the journal's and lock's folders are the run's to create: the check proves it can, and creates nothing
    check_outputs([], journal=tmp_path / "state" / "deep" / "j.jsonl", lock=tmp_path / "state" / "j.lock")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="a part of the path is a file"):
        check_outputs([], journal=tmp_path / "file" / "state" / "j.jsonl")


def test_an_unwritable_folder_or_journal_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions are not enforced")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert "cannot create a file in" in error(check_outputs, [("--report", locked / "r.json")])
    journal = tmp_path / "j.jsonl"
    journal.write_text("")
    journal.chmod(0o400)
    assert "cannot open it for writing" in error(check_outputs, [], journal=journal)


def test_two_outputs_on_one_file_are_refused(tmp_path: Path) -> None:
    message = error(check_outputs, [("--report", tmp_path / "x"), ("--html", tmp_path / "." / "x")])
    assert message.startswith("--report and --html name the same file")


# ------------------------------------------------------------------------------------------- input files
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "users.csv"
    os.mkfifo(fifo)
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(error(read_users_file, fifo)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert outcome == [f"{fifo}: is a named pipe (FIFO), not a regular file: give the users file itself"]


def test_devices_directories_and_oversized_files_are_refused_before_reading(tmp_path: Path) -> None:
    assert error(load_config, Path("/dev/zero")).startswith("/dev/zero: is a character device")
    assert error(read_regular, tmp_path, "plan file", 10) == f"{tmp_path}: is a directory, not a plan file"
    big = tmp_path / "big.toml"
    with big.open("wb") as handle:
        handle.truncate((1 << 20) + 1)
    assert error(load_config, big) == f"{big}: larger than 1 MiB, the most a configuration file may be"
    small = tmp_path / "small"
    small.write_bytes(b"abc")
    with open_regular(small, "users file", 3) as stream:
        assert stream.read() == b"abc"


# ------------------------------------------------------------------------------------------- users files
def write(tmp_path: Path, text: str, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_a_csv_export_with_an_unknown_header_names_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, '"Name","WindowsEmailAddress"\n"Sam Smith","sam@contoso.com"\n')
    message = error(read_users_file, path)
    assert message.startswith(f"{path}:1: this looks like a CSV header, but it names no identity column")
    assert "'Name', 'WindowsEmailAddress'" in message and "Identity, PrimarySmtpAddress" in message
    assert "--column NAME" in message


def test_column_picks_any_column_and_names_the_columns_when_absent(tmp_path: Path) -> None:
    path = write(tmp_path, '"Name","WindowsEmailAddress"\n"Sam Smith","sam@contoso.com"\n"Jo","jo@contoso.com"\n')
    targets = read_users_file(path, column="windowsemailaddress").targets
    assert [(str(t.source), t.identity.value) for t in targets] == [
        (f"{path}:2", "sam@contoso.com"), (f"{path}:3", "jo@contoso.com")]
    message = error(read_users_file, path, column="Mail")
    assert message == f"{path}:1: no column 'Mail' (--column) in the header: the columns found are 'Name', " \
                      "'WindowsEmailAddress'"


def test_plain_lists_with_commas_stay_plain_lists(tmp_path: Path) -> None:
    for line in ("CN=Sam Smith,OU=Sales,DC=contoso,DC=com", "Smith, Sam", "contoso\\sam", "sam@contoso.com"):
        assert not looks_like_header(line)
        assert [t.identity.value for t in read_users_file(write(tmp_path, line + "\n")).targets] == [line]
    for line in ("Name,Department", "Display Name;E-mail", '"Sam Smith"', "Name\tTitle"):
        assert looks_like_header(line)


def test_stray_quotes_are_refused_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'Identity,Notes\nalice,"a\nb"\nbob,5" screen\n')
    assert error(read_users_file, path).startswith(f"{path}:4: stray double quote in an unquoted field")
    path = write(tmp_path, 'Notes;Identity\n"x\ny\nz";a"b\n')
    assert error(read_users_file, path).startswith(f"{path}:4: stray double quote")


@proof_settings(0.5)
@given(rows=st.lists(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), min_size=2,
                              max_size=2), max_size=5),
       quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]), delimiter=st.sampled_from([",", ";", "\t"]))
def test_files_a_csv_writer_makes_have_no_stray_quote(tmp_path_factory: pytest.TempPathFactory,
                                                       rows: list[list[str]], quoting: int, delimiter: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator="\n")
    writer.writerow(["Notes", "Identity"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("w") / "u.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    try:
        read_users_file(path)
    except InputError as exc:
        assert "stray double quote" not in str(exc)


@proof_settings(0.5)
@given(before=st.text("abc xyz", min_size=1, max_size=6), after=st.text("abc xyz", max_size=6),
       line=st.integers(min_value=0, max_value=3))
def test_a_quote_inside_an_unquoted_field_is_always_refused(tmp_path_factory: pytest.TempPathFactory, before: str,
                                                            after: str, line: int) -> None:
    rows = ["alice,x"] * line + [f"bob,{before}\"{after}"]
    path = tmp_path_factory.mktemp("s") / "u.csv"
    path.write_text("Identity,Notes\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert error(read_users_file, path).startswith(f"{path}:{line + 2}: stray double quote")


def test_wildcards_are_refused_wherever_an_identity_comes_from(tmp_path: Path) -> None:
    path = write(tmp_path, "alice\nj*\n", "users.txt")
    assert error(read_users_file, path) == f"{path}:2: 'j*' contains a wildcard (*): {WILDCARD_ADVICE}"
    assert error(collect_targets, ["al*ce"], []).startswith("--mailbox: 'al*ce' contains a wildcard")
    config = write(tmp_path, '[trustees]\nservice_account = "svc*"\n', "c.toml")
    assert error(load_config, config) == f"{config}: trustees.service_account: 'svc*' contains a wildcard (*): " \
                                         f"{WILDCARD_ADVICE}"
