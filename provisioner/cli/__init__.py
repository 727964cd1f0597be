"""The command line: parse, call, print. Exceptions become exit codes here and only here (:mod:`.common`).

One module per group of commands; importing them registers the commands on the Typer apps (:mod:`.apps`) in the
order ``--help`` lists them.
"""

from __future__ import annotations

from provisioner.cli import changes  # noqa: F401 (first: grant, revoke and reapply lead --help)

# isort: split
from provisioner.cli import applying, audit, journal, tools  # noqa: F401 (registers the commands)
from provisioner.cli.apps import app, main

__all__ = ["app", "main"]
