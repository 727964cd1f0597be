"""The run lock cannot be bypassed: while a run holds it, a second changing run exits 5 whatever happened to the
lock's file; a killed holder never blocks the next run; an unusable lock path with no holder is exit 2, sent nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from provisioner_lab.run import Lab, running_lab
from provisioner_lab.server import FaultOptions

from provisioner.errors import ExitCode, InputError
from provisioner.runs.lock import LockHeld, exclusive

ROOT = Path(__file__).parent.parent
SERVICE = "svc-codetwo@contoso.com"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with running_lab(mailboxes=8) as running:
        yield running


def cli(lab: Lab, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password}
    return subprocess.run([sys.executable, "-m", "provisioner", *args, *lab.cli_args("ntlm")], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120, stdin=subprocess.DEVNULL)


def requests(lab: Lab) -> int:
    return int(lab.server.counters["total"])


def _delete(path: Path) -> None:
    path.unlink()


def _symlink(path: Path) -> None:
    path.unlink()
    target = path.with_name("elsewhere")
    target.write_text("")
    path.symlink_to(target)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("tamper", [_delete, _symlink, _directory], ids=["deleted", "symlink", "directory"])
def test_a_second_run_exits_5_whatever_happened_to_the_lock_file(
    lab: Lab, tmp_path: Path, tamper: Callable[[Path], None]
) -> None:
    journal = tmp_path / "journal.jsonl"
    lock = tmp_path / "journal.jsonl.lock"
    with exclusive(lock, key=journal):
        tamper(lock)
        before = requests(lab)
        second = cli(lab, tmp_path, "grant", "-m", "user000001", "--service-account", SERVICE,
                     "--journal", str(journal))
        assert second.returncode == ExitCode.LOCKED, second.stderr
        assert f"pid {os.getpid()}" in second.stderr  # the holder is named, even with its file gone
        assert requests(lab) == before  # refused before connecting
    if lock.is_dir():
        lock.rmdir()
    after = cli(lab, tmp_path, "grant", "-m", "user000001", "--service-account", SERVICE, "--journal", str(journal))
    assert after.returncode == 0, after.stderr


def test_the_same_journal_is_one_lock_whatever_lock_file_each_run_names(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    with exclusive(tmp_path / "a.lock", key=journal), pytest.raises(LockHeld), \
            exclusive(tmp_path / "b.lock", key=tmp_path / "." / "journal.jsonl"):
        pass


def test_grant_and_revoke_during_a_reapply_exit_5_and_a_killed_holder_never_blocks(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "provisioner.toml"
    config.write_text(lab.config_toml() + f'''batch_size = 1
[trustees]
service_account = "{SERVICE}"
[targets]
mailboxes = ["user000001", "user000002", "user000003", "user000004"]
[reapply]
journal = "journal.jsonl"
verify = false
''', encoding="utf-8")
    lab.server.set_faults(FaultOptions(latency_ms=300))  # a reapply that takes seconds
    env = {**os.environ, "PROVISIONER_PASSWORD": lab.password}
    holder = subprocess.Popen([sys.executable, "-m", "provisioner", "reapply", "--config", str(config)], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "journal.jsonl.lock"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
            time.sleep(0.05)
        for command in (["grant"], ["revoke", "--yes"], ["reapply"]):
            second = cli(lab, tmp_path, *command, "--config", str(config))
            assert second.returncode == ExitCode.LOCKED, (command, second.stderr)
            assert f"pid {holder.pid}" in second.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    lab.server.set_faults(FaultOptions())
    rerun = cli(lab, tmp_path, "reapply", "--config", str(config))
    assert rerun.returncode == 0, rerun.stderr


@pytest.mark.parametrize("make", ["directory", "missing-folder"])
def test_an_unusable_lock_path_with_no_holder_is_exit_2_before_connecting(lab: Lab, tmp_path: Path, make: str) -> None:
    lock = tmp_path / "lock"
    if make == "directory":
        lock.mkdir()
    else:
        lock = tmp_path / "missing" / "lock"
    before = requests(lab)
    result = cli(lab, tmp_path, "grant", "-m", "user000001", "--service-account", SERVICE, "--lock-file", str(lock))
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert str(lock) in result.stderr and "Traceback" not in result.stderr
    assert requests(lab) == before
    with pytest.raises(InputError), exclusive(lock):
        pass
    if make == "directory":
        shutil.rmtree(lock)


def test_every_changing_command_takes_the_lock_before_sending_and_dry_runs_take_none(lab: Lab, tmp_path: Path) -> None:
    """grant, revoke, reapply, apply and journal undo all go through the one run protocol (cli/protocol.py): with the
    lock held they exit 5 having sent nothing; their dry-runs change nothing, so they take no lock and run."""
    config = tmp_path / "provisioner.toml"
    config.write_text(lab.config_toml() + f'''[trustees]
service_account = "{SERVICE}"
[targets]
mailboxes = ["user000001", "user000002"]
[reapply]
journal = "journal.jsonl"
''', encoding="utf-8")
    granted = cli(lab, tmp_path, "grant", "--config", str(config))
    assert granted.returncode == 0, granted.stderr
    recorded = [line for line in granted.stderr.splitlines() if " recorded in " in line]
    assert len(recorded) == 1 and recorded[0].endswith(str(tmp_path / "journal.jsonl")), granted.stderr
    run_id = recorded[0].split()[1]
    plan = tmp_path / "revoke.plan"
    planned = cli(lab, tmp_path, "plan", "revoke", "--out", str(plan), "--config", str(config))
    assert planned.returncode == 0, planned.stderr
    changing = (["grant"], ["revoke", "--yes"], ["reapply"], ["apply", str(plan), "--yes"],
                ["journal", "undo", run_id, "--yes"])
    dry_runs = (["grant", "--dry-run"], ["revoke", "--dry-run"], ["reapply", "--dry-run"],
                ["journal", "undo", run_id, "--dry-run"])
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text(encoding="utf-8")
    with exclusive(journal.with_name("journal.jsonl.lock"), key=journal):
        before = requests(lab)
        for command in changing:
            second = cli(lab, tmp_path, *command, "--config", str(config))
            assert second.returncode == ExitCode.LOCKED, (command, second.stderr)
            assert f"pid {os.getpid()}" in second.stderr, (command, second.stderr)
        assert requests(lab) == before, "a run refused by the lock sent requests"
        assert journal.read_text(encoding="utf-8") == lines, "a run refused by the lock wrote the journal"
        for command in dry_runs:
            dry = cli(lab, tmp_path, *command, "--config", str(config))
            assert dry.returncode == 0, (command, dry.stderr)
            assert " recorded in " not in dry.stderr, (command, dry.stderr)
    assert journal.read_text(encoding="utf-8") == lines, "a dry-run wrote the journal"


def test_the_lock_is_taken_in_one_place() -> None:
    """Only the command line's run protocol decides the journal and takes the lock (``guard_of``, ``.held()``)."""
    import ast

    found = []
    for path in sorted((ROOT / "provisioner").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("guard_of", "held"):
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{name}")
    assert sorted(set(found)) == ["provisioner/cli/protocol.py:guard_of", "provisioner/cli/protocol.py:held"], found
