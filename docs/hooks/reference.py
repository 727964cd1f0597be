"""mkdocs hook: the CLI and configuration references, generated from the code at every build (never committed, so
they cannot fall behind): ``provisioner.cli.reference``."""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from provisioner.cli.reference import cli_reference, config_reference

PAGES = {"reference/cli.md": cli_reference, "reference/configuration.md": config_reference}


def on_files(files: Files, config: Any) -> Files:
    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files
