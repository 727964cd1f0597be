"""Config discovery: the search order, explicit choices that are missing, `provisioner config path`, the file named
on stderr and in the JSON report, and a run without any config listing everything it misses at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PureWindowsPath

import pytest

from provisioner.errors import InputError
from provisioner.inputs.config import discover
from provisioner.inputs.discovery import ENV, locate

ROOT = Path(__file__).parent.parent
CONFIG = '[connection]\nserver = "{server}"\n'


def _file(folder: Path, server: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "provisioner.toml"
    path.write_text(CONFIG.format(server=server), encoding="utf-8")
    return path


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / name for name in ("cwd", "home", "xdg", "etc", "explicit", "env")}


def _locate(places: dict[str, Path], explicit: Path | None = None, **environ: str):  # type: ignore[no-untyped-def]
    return locate(explicit, environ=environ, platform="linux", cwd=places["cwd"], home=places["home"],
                  system=places["etc"])


def test_each_place_in_order_and_the_first_wins(places: dict[str, Path]) -> None:
    for folder in ("cwd", "home", "xdg", "etc"):
        places[folder].mkdir()
    assert _locate(places).path is None
    system = _file(places["etc"], "etc")
    assert (_locate(places).path, _locate(places).origin) == (system, "system")
    user = _file(places["home"] / ".config" / "provisioner", "home")
    assert (_locate(places).path, _locate(places).origin) == (user, "user folder")
    xdg_user = _file(places["xdg"] / "provisioner", "xdg")
    assert _locate(places, XDG_CONFIG_HOME=str(places["xdg"])).path == xdg_user
    assert _locate(places, XDG_CONFIG_HOME="relative/ignored").path == user  # XDG: a relative value is ignored
    here = _file(places["cwd"], "cwd")
    assert (_locate(places).path, _locate(places).origin) == (here, "current folder")
    env = _file(places["env"], "env")
    assert (_locate(places, **{ENV: str(env)}).path, _locate(places, **{ENV: str(env)}).origin) == (env, ENV)
    explicit = _file(places["explicit"], "explicit")
    found = _locate(places, explicit, **{ENV: str(env)})
    assert (found.path, found.origin, found.explicit) == (explicit, "--config", True)
    assert [c.state for c in found.candidates] == ["used", "not checked", "not checked", "not checked", "not checked"]


def test_the_candidates_say_what_was_found(places: dict[str, Path]) -> None:
    places["cwd"].mkdir()
    system = _file(places["etc"], "etc")
    found = _locate(places)
    assert [(c.origin, c.state) for c in found.candidates] == [
        ("--config", "not set"), (ENV, "not set"), ("current folder", "not found"), ("user folder", "not found"),
        ("system", "used")]
    assert found.describe() == f"{system} (system)"


def test_an_explicit_file_that_is_missing_is_an_error_not_a_fall_through(
        places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _file(places["cwd"], "cwd")
    missing = places["env"] / "nope.toml"
    found = _locate(places, **{ENV: str(missing)})
    assert (found.path, found.origin) == (missing, ENV)
    monkeypatch.chdir(places["cwd"])
    monkeypatch.setenv(ENV, str(missing))
    with pytest.raises(InputError, match=f"not found \\(named by the {ENV} environment variable\\)"):
        discover(None)
    with pytest.raises(InputError, match="not found \\(named by --config\\)"):
        discover(places["cwd"] / "other.toml")
    monkeypatch.delenv(ENV)
    assert discover(None).connection.server == "cwd"


def test_windows_locations() -> None:
    environ = {"APPDATA": r"C:\Users\ann\AppData\Roaming", "ProgramData": r"C:\ProgramData"}
    found = locate(None, environ=environ, platform="win32", cwd=Path("/nonexistent"), home=Path("/nonexistent"))
    user, system = (PureWindowsPath(str(c.path)) for c in found.candidates[3:])
    assert user == PureWindowsPath(r"C:\Users\ann\AppData\Roaming\provisioner\provisioner.toml")
    assert system == PureWindowsPath(r"C:\ProgramData\provisioner\provisioner.toml")


def test_linux_system_location_is_etc() -> None:
    found = locate(None, environ={}, platform="linux", cwd=Path("/nonexistent"), home=Path("/nonexistent"))
    assert found.candidates[-1].path == Path("/etc/provisioner/provisioner.toml")


# ------------------------------------------------------------------------------------------------ the command line
def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if name not in (ENV, "PROVISIONER_PASSWORD")}
    base.update(PYTHONIOENCODING="utf-8", XDG_CONFIG_HOME=str(cwd / "xdg"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, cwd=cwd,
                          env=base, timeout=60, stdin=subprocess.DEVNULL)


def test_config_path_lists_every_candidate_and_the_one_used(tmp_path: Path) -> None:
    user = _file(tmp_path / "xdg" / "provisioner", "user")
    result = run("config", "path", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["not", "not", "not", "used", "not"]
    assert str(user) in lines[3] and "/etc/provisioner/provisioner.toml" in lines[4]
    assert lines[-1] == f"using {user} (user folder)"
    here = _file(tmp_path, "here")
    assert run("config", "path", cwd=tmp_path).stdout.splitlines()[-1] == f"using {here} (current folder)"


def test_config_path_without_any_file_exits_2(tmp_path: Path) -> None:
    if Path("/etc/provisioner/provisioner.toml").exists():
        pytest.skip("this machine has a system-wide configuration")
    result = run("config", "path", cwd=tmp_path, env={ENV: ""})
    assert result.returncode == 2
    assert result.stderr.startswith("error: no configuration file: none found (looked in ")
    missing = run("config", "path", cwd=tmp_path, env={ENV: str(tmp_path / "gone.toml")})
    assert missing.returncode == 2 and f"not found    {ENV}" in missing.stdout


def test_a_run_names_its_config_on_stderr_and_in_its_report(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "provisioner.toml"
    config.parent.mkdir()
    config.write_text('[trustees]\nservice_account = "svc@contoso.com"\n[targets]\nmailboxes = ["ann"]\n')
    result = run("grant", "--dry-run", "--offline", "--report", str(tmp_path / "r.json"), cwd=tmp_path,
                 env={ENV: str(config)})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"config: {config} ({ENV})"
    assert json.loads((tmp_path / "r.json").read_text())["config"] == str(config)


def test_a_run_without_any_config_says_so_and_lists_everything_missing(tmp_path: Path) -> None:
    if Path("/etc/provisioner/provisioner.toml").exists():
        pytest.skip("this machine has a system-wide configuration")
    result = run("grant", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("config: none found (looked in ")
    error = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert error.startswith("error: no configuration file found (see `provisioner config path`); ")
    for sentence in ("no trustees: give --admin-user", "no target mailboxes: give --mailbox",
                     "no server configured: set connection.server"):
        assert sentence in error
    # what the options give is not listed; offline dry-runs need no server
    partial = run("grant", "--dry-run", "--offline", "--trustee", "svc", cwd=tmp_path)
    error = next(line for line in partial.stderr.splitlines() if line.startswith("error: "))
    assert "no target mailboxes" in error and "no trustees" not in error and "no server" not in error


def test_a_config_missing_two_things_lists_both(tmp_path: Path) -> None:
    config = tmp_path / "provisioner.toml"
    config.write_text('[trustees]\nservice_account = "svc@contoso.com"\n')
    result = run("grant", cwd=tmp_path)
    assert result.returncode == 2
    error = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert error.startswith(f"error: {config}: no target mailboxes") and "no server configured" in error
