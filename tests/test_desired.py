"""Desired state: command-line trustees and targets override the config's; warnings reach the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import InputError
from provisioner.inputs.config import load_config
from provisioner.inputs.desired import TrusteeOptions, desired


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "users.txt").write_text("alice\nbob\n", encoding="utf-8")
    path = tmp_path / "provisioner.toml"
    path.write_text(
        '[trustees]\nadmin_user = "console"\nservice_account = "svc"\nautomapping = true\n'
        '[[trustees.extra]]\nidentity = "auditor"\nautomapping = false\n'
        '[targets]\nusers_file = "users.txt"\nmailboxes = ["carol ", "ALICE"]\n',
        encoding="utf-8",
    )
    return path


def test_config_alone(config_path: Path) -> None:
    wanted = desired(load_config(config_path), TrusteeOptions(), [], [])
    assert [(t.identity.value, t.role, t.automapping) for t in wanted.trustees] == [
        ("console", "admin-user", True), ("svc", "service-account", True), ("auditor", "trustee", False)
    ]
    assert [m.value for m in wanted.mailboxes] == ["carol", "ALICE", "bob"]
    assert [str(d.target.source) for d in wanted.targets.duplicates] == [f"{config_path.parent / 'users.txt'}:1"]
    assert any("targets.mailboxes[1]" in str(w.source) and "whitespace" in w.message.lower()
               for w in wanted.targets.warnings)


def test_command_line_overrides(config_path: Path, tmp_path: Path) -> None:
    wanted = desired(
        load_config(config_path), TrusteeOptions(service_account="svc2", extra=["helpdesk"], automapping=False),
        ["dave"], [],
    )
    assert [(t.identity.value, t.role, t.automapping) for t in wanted.trustees] == [
        ("console", "admin-user", False), ("svc2", "service-account", False), ("helpdesk", "trustee", False)
    ]
    assert [m.value for m in wanted.mailboxes] == ["dave"]


def test_same_trustee_twice_is_used_once(config_path: Path) -> None:
    wanted = desired(load_config(config_path), TrusteeOptions(admin_user="SVC", extra=["x"]), ["m"], [])
    assert [t.identity.value for t in wanted.trustees] == ["SVC", "x"]
    assert any("listed twice" in note for note in wanted.notes)


def test_bad_trustee_names_its_option(config_path: Path) -> None:
    with pytest.raises(InputError, match=r"^--admin-user: empty identity"):
        desired(load_config(config_path), TrusteeOptions(admin_user=" "), ["m"], [])
