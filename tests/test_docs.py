"""The documentation cannot fall behind the code: the generated references cover every command, option and
configuration key; every exit code is in Troubleshooting; the nav and the pages agree; the scheduling examples pass
the config, metrics and log paths with options the CLI has; the README stays short and links the docs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main

from provisioner.cli import app
from provisioner.cli.reference import cli_reference, config_reference, config_tables
from provisioner.errors import ExitCode, InputError
from provisioner.inputs.config import load_config

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
GENERATED = {"reference/cli.md", "reference/configuration.md"}


def accepted_keys(tmp_path: Path, table: str) -> set[str]:
    """The keys ``[table]`` accepts, as the loader itself says when given an unknown one."""
    path = tmp_path / "probe.toml"
    path.write_text(f"[{table}]\nzzzzzzzzzzzz = 1\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_config(path)
    known = re.search(r"\(known: ([^)]*)\)", str(caught.value))
    assert known, str(caught.value)
    return {f"{table}.{name.strip()}" for name in known.group(1).split(",")}


def test_the_configuration_reference_has_every_key_the_loader_accepts(tmp_path: Path) -> None:
    tables = config_tables()
    for table, rows in tables.items():
        documented = {key for key, *_ in rows}
        assert documented == accepted_keys(tmp_path, table), table
        for key, kind, _default, meaning in rows:
            assert kind and meaning, f"{key} has no type or meaning"
    text = config_reference()
    for rows in tables.values():
        for key, *_ in rows:
            assert f"| `{key}` |" in text


def _commands(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_the_cli_reference_has_every_command_and_option() -> None:
    text = cli_reference()
    for path, command in _commands(typer.main.get_command(app), ()):
        section = text.split(f"## {' '.join(('provisioner', *path))}\n", 1)
        assert len(section) == 2, path
        body = section[1].split("\n## ", 1)[0]
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden and param.name != "help":
                assert f"`{param.opts[0]}`" in body, (path, param.opts)
    assert "`--log-format`" in text and "## provisioner config path" in text


def test_troubleshooting_explains_every_exit_code() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| (\d+) \|", text, re.MULTILINE))
    assert rows == {str(int(code)) for code in ExitCode}


def _nav_pages(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def _nav() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    return re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.MULTILINE)


def test_the_nav_lists_every_page_and_every_listed_page_exists() -> None:
    listed = _nav()
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert set(listed) == pages | GENERATED
    for page in ("reliability.md", "inputs.md", "reports.md", "onprem-permissions.md"):
        assert page in listed  # other guides' pages have their place


def _provisioner_args(text: str) -> list[str]:
    """The options of the provisioner command line(s) in an example file (comment lines left out)."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", code)


@pytest.mark.parametrize("name", ["provisioner-reapply.service", "crontab.txt", "task-scheduler.ps1"])
def test_the_scheduling_examples_pass_config_metrics_and_log_paths(name: str) -> None:
    text = (ROOT / "examples" / "scheduling" / name).read_text(encoding="utf-8")
    options = set(_provisioner_args(text))
    assert {"--config", "--metrics-file", "--report", "--journal"} <= options
    assert options & {"--log-file", "--log-syslog"}
    root = typer.main.get_command(app)
    known = {opt for command in (root, root.commands["reapply"]) for param in command.params for opt in param.opts}
    assert options <= known, options - known


def test_the_readme_is_short_and_links_the_docs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for link in re.findall(r"\]\(((?:docs/)[^)#]+)\)", text):
        assert (ROOT / link).is_file(), link
    assert "make demo" in text and "make test" in text and "docs/getting-started.md" in text


def test_pyproject_docs_extra_builds_the_site() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(req.startswith("mkdocs-material") for req in extras["docs"])
