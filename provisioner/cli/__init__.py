"""The command line: parse, call, print. Exceptions become exit codes here and only here (:mod:`.common`).

One module per group of commands; importing them registers the commands on the Typer apps (:mod:`.apps`) in the
order ``--help`` lists them. Importing this package is cheap: the command modules, and the transport stack they
import, load on the first use of :data:`app` or :func:`main` (``provisioner --version`` alone does not load them).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["app", "main"]


def _commands() -> typer.Typer:
    """The top-level Typer app with every command registered."""
    from provisioner.cli import changes  # noqa: F401 (first: grant, revoke and reapply lead --help)

    # isort: split
    from provisioner.cli import applying, audit, journal, tools  # noqa: F401 (registers the commands)
    from provisioner.cli.apps import app

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """The ``provisioner`` command. ``provisioner --version`` on its own is answered before the commands load, with
    the line the ``--version`` option prints (:func:`provisioner.version.describe`): monitoring and inventory
    scripts call it often, and it needs none of them."""
    if sys.argv[1:] == ["--version"]:
        from provisioner.version import describe

        print(describe())
        return
    _commands()
    from provisioner.cli.apps import main as run

    run()
