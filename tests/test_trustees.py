"""Trustees are resolved once, first: a mistyped or ambiguous trustee is one message naming it (exit 2), before any
permission is read or written, instead of one failure per mailbox after the other trustees were granted."""

from __future__ import annotations

from pathlib import Path

import pytest
from provisioner_lab.exchange.engine import ExchangeEngine
from provisioner_lab.run import running_lab

from tests import labcli

ADMIN, SERVICE = "sync.admin@contoso.com", "svc-codetwo@contoso.com"
MAILBOXES = [f"user{i:06d}@contoso.com" for i in range(1, 21)]


cli = labcli.run


def targets() -> list[str]:
    return labcli.targets(MAILBOXES)


@pytest.mark.parametrize("command", [["grant"], ["audit"], ["revoke", "--yes"], ["reapply"]])
def test_a_mistyped_trustee_is_one_message_and_nothing_is_written(tmp_path: Path, command: list[str]) -> None:
    with running_lab(mailboxes=len(MAILBOXES)) as lab:
        result = cli(lab, tmp_path, *command, *targets(), "--admin-user", ADMIN,
                     "--service-account", "svc-codtwo@contoso.com")
        assert result.returncode == 2, result.stderr
        messages = [line for line in result.stderr.splitlines()  # without the config line and the run log's two
                    if not line.startswith("config: ") and " provisioner INFO " not in line]
        assert len(messages) == 1  # one message, not one per mailbox
        assert "trustee 'svc-codtwo@contoso.com' was not found" in result.stderr
        assert lab.engine.counters.writes == 0
        assert not lab.engine.directory.has_full_access(MAILBOXES[0], ADMIN)  # the good trustee is not granted alone
        assert "Traceback" not in result.stderr


def test_an_ambiguous_trustee_is_refused_and_a_user_without_mailbox_is_fine(tmp_path: Path) -> None:
    engine = ExchangeEngine.generated(len(MAILBOXES))
    engine.directory.add_user("jdoe1", "John Doe", upn="jdoe1@contoso.com")
    engine.directory.add_user("jdoe2", "John Doe", "contoso.com/Staff", upn="jdoe2@contoso.com")
    with running_lab(engine=engine) as lab:
        ambiguous = cli(lab, tmp_path, "grant", *targets(), "--trustee", "John Doe")
        assert ambiguous.returncode == 2, ambiguous.stderr
        assert "trustee 'John Doe' is ambiguous" in ambiguous.stderr
        assert lab.engine.counters.writes == 0
        fine = cli(lab, tmp_path, "grant", *targets(), "--trustee", "jdoe1@contoso.com", "--service-account", SERVICE)
        assert fine.returncode == 0, fine.stderr  # svc-codetwo has no mailbox: a trustee all the same
        assert lab.engine.directory.has_full_access(MAILBOXES[0], SERVICE)


def test_check_prints_what_each_trustee_resolves_to(tmp_path: Path) -> None:
    engine = ExchangeEngine.generated(2)
    engine.directory.add_user("jdoe1", "John Doe", upn="jdoe1@contoso.com")
    engine.directory.add_user("jdoe2", "John Doe", "contoso.com/Staff", upn="jdoe2@contoso.com")
    with running_lab(engine=engine) as lab:
        good = cli(lab, tmp_path, "check", "--admin-user", ADMIN, "--service-account", SERVICE)
        assert good.returncode == 0, good.stdout + good.stderr
        assert f"trustee {SERVICE} (service-account): User {SERVICE}" in good.stdout  # a user without a mailbox
        assert f"trustee {ADMIN} (admin-user): UserMailbox {ADMIN}" in good.stdout
        bad = cli(lab, tmp_path, "check", "--service-account", "svc-codtwo@contoso.com", "--trustee", "John Doe")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "trustee svc-codtwo@contoso.com (service-account): not found" in bad.stdout
        assert "trustee John Doe (trustee): matches 2 objects" in bad.stdout
