"""The documentation's two references, generated so neither can fall behind the code: the command line from the Typer
application, the configuration file from its schema (the dataclasses of :mod:`provisioner.inputs.config`: a field's help
is its schema metadata, else its trailing comment, else :data:`FIELD_HELP`; :data:`TABLE_KEYS` describes the tables
that are not one dataclass).

The docs site builds them at build time (``docs/hooks/reference.py``); ``python -m provisioner.cli.reference
cli|config``
prints one.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from provisioner.inputs import config as schema
from provisioner.inputs.discovery import ENV as CONFIG_ENV

# The tables whose keys are not the fields of one dataclass: key -> (TOML type, default, meaning).
TABLE_KEYS: dict[str, dict[str, tuple[str, str, str]]] = {
    "trustees": {
        "admin_user": ("string", "—", "the sync product's admin-console user (its mailboxes also go into its MAPI "
                       "profile; `--admin-user`)"),
        "service_account": ("string", "—", "the account the sync service runs under (`--service-account`)"),
        "automapping": ("boolean", "`false`", "Outlook AutoMapping for new grants (`--automapping`)"),
        "extra": ("array of tables", "—", "more trustees: `[[trustees.extra]]` with `identity` and an optional "
                  "`automapping`, or plain strings (`--trustee`)"),
    },
    "targets": {
        "mailboxes": ("array of strings", "—", "target mailboxes: alias, SMTP address, UPN, `DOMAIN\\sam`, GUID or "
                      "DN (`--mailbox`)"),
        "users_file": ("string or array", "—", "users file(s): one identity per line, or CSV; relative to the "
                       "config file (`--users-file`)"),
        "users_files": ("string or array", "—", "the same as `users_file`"),
        "selector": ("array of tables", "—", "`[[targets.selector]]`: live targets resolved on Exchange, exactly one "
                     "of `organizational_unit`, `group` (members, nested groups expanded) or `filter` (OPATH), "
                     "and `recipient_type_details` (default `[\"UserMailbox\"]`); `reapply` only"),
        "exclude": ("array of strings", "—", "mailboxes never targeted, whatever selects them"),
        "column": ("string", "—", "the users files' identity column, any CSV header name (`--column`); default: "
                   "the first of Identity, PrimarySmtpAddress, UserPrincipalName, Alias, Mailbox in the header"),
    },
}

# Meanings of the dataclass fields that carry no trailing comment in provisioner/inputs/config.py.
FIELD_HELP: dict[str, str] = {
    "connection.server": "Exchange server FQDN (`--server`)",
    "connection.scheme": "`http` or `https` (`--scheme`)",
    "connection.path": "URL path of the remote PowerShell endpoint",
    "connection.configuration_name": "the PSSession configuration",
    "connection.auth": "authentication method (`--auth`)",
    "connection.username": "account for password-based authentication (`--username`; the password from "
                           "`PROVISIONER_PASSWORD`, the keyring or a prompt, never from this file)",
    "connection.cert_validation": "validate the server's TLS certificate (https); off prints a warning every run",
    "connection.ca_bundle": "CA bundle for the server's certificate (https)",
    "connection.certificate_pem": "client certificate for certificate authentication",
    "connection.certificate_key_pem": "its private key",
    "connection.operation_timeout": "seconds an operation may take on the server",
    "connection.connection_timeout": "seconds to connect",
    "connection.mode": "`command` (structured cmdlet calls; NoLanguage endpoints) or `script` (`--mode`)",
    "connection.domain_controller": "pin reads and writes to this domain controller (`--domain-controller`)",
    "exo.cloud": "the Microsoft 365 cloud: `worldwide`, `gcchigh` or `dod`",
    "reapply.journal": "the JSON-lines change journal (relative to the config file; `--journal`)",
    "reapply.report": "the JSON report of each run (`--report`)",
    "reapply.metrics_file": "Prometheus textfile of the last run (`--metrics-file`)",
}

TOML_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "string (path)"}


# ---------------------------------------------------------------------------------------------------- configuration
def field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field line in ``cls``'s source."""
    comments: dict[str, str] = {}
    source = inspect.getsource(cls)
    current: str | None = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NL or token.type == tokenize.NEWLINE:
            current = None
        elif token.type == tokenize.NAME and current is None and token.start[1] == 4:
            current = token.string
        elif token.type == tokenize.COMMENT and current is not None and token.start[1] > 4:
            comments[current] = token.string.lstrip("#").strip()
    return comments


def _toml_type(annotation: Any) -> str:
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_toml_type(arg) for arg in args))
    if origin is tuple:
        return "array"
    return TOML_TYPES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(item: dataclasses.Field[Any]) -> str:
    if item.default is dataclasses.MISSING:
        return "—"
    value = item.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def _schema_help(item: dataclasses.Field[Any]) -> str | None:
    """The help a field's schema metadata carries (a rule object with a ``help`` text), if any."""
    for value in item.metadata.values():
        text = getattr(value, "help", None)
        if isinstance(text, str) and text:
            return text
    return None


def dataclass_keys(section: str, cls: type) -> Iterator[tuple[str, str, str, str]]:
    """(key, TOML type, default, meaning) of each field of ``cls`` that is a key of ``[section]``."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    for item in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[item.name]):
            continue  # a table of its own ([exo])
        key = f"{section}.{item.name}"
        meaning = _schema_help(item) or comments.get(item.name) or FIELD_HELP.get(key, "")
        yield key, _toml_type(hints[item.name]), _default(item), meaning


def config_tables() -> dict[str, list[tuple[str, str, str, str]]]:
    """Every table of the configuration file and its keys, in the file's order."""
    tables: dict[str, list[tuple[str, str, str, str]]] = {
        "connection": list(dataclass_keys("connection", schema.Connection)),
        "exo": list(dataclass_keys("exo", schema.ExoSettings)),
    }
    for name, keys in TABLE_KEYS.items():
        tables[name] = [(f"{name}.{key}", kind, default, meaning) for key, (kind, default, meaning) in keys.items()]
    tables["reapply"] = list(dataclass_keys("reapply", schema.RunSettings))
    return tables


def config_reference() -> str:
    out = ["# Configuration reference", "",
           "Generated from the configuration schema (`provisioner/inputs/config.py`): every key the file accepts.",
           "An unknown key, a wrong type or a bad value stops the run with the file and the key named, before",
           "anything is sent.",
           f"Where the file is found (`--config`, `{CONFIG_ENV}`, the current folder, the user's and the system's",
           "folders): [Configuration](../guides/configuration.md). Relative paths are relative to the file's folder.",
           ""]
    for table, keys in config_tables().items():
        out += [f"## [{table}]", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| `{key}` | {kind} | {default} | {_cell(meaning)} |" for key, kind, default, meaning in keys]
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


# ---------------------------------------------------------------------------------------------------- command line
def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


def _option_row(param: Any) -> str:
    names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
    if param.param_type_name == "argument":
        names = f"`{param.name.upper()}`"
    if param.param_type_name == "option" and param.is_flag:
        default = "" if param.default in (None, False) else f"`{param.default}`"
    elif param.default is None or param.default == ():
        default = ""
    else:
        default = f"`{param.default}`"
    notes = []
    if param.param_type_name == "option" and param.multiple and "repeatable" not in (param.help or ""):
        notes.append("repeatable")
    if param.required:
        notes.append("required")
    help_text = (param.help or "") + (f" ({', '.join(notes)})" if notes else "")
    return f"| {names} | {default} | {_cell(help_text)} |"


def cli_reference() -> str:
    import typer.main

    from provisioner.cli import app

    root = typer.main.get_command(app)
    out = ["# Command-line reference", "",
           "Generated from the command line itself (the Typer application in `provisioner/cli/`); "
           "`provisioner COMMAND --help` shows the same.", "",
           "Global options come before the command: `provisioner [GLOBAL OPTIONS] COMMAND [OPTIONS]`.", ""]
    for path, command in _commands(root, ()):
        title = " ".join(("provisioner", *path))
        params = [param for param in command.params if not param.hidden and param.name != "help"]
        groups = getattr(command, "commands", None)
        out += [f"## {title}", ""]
        if command.help:
            out += [inspect.cleandoc(command.help), ""]
        if groups:
            out += ["Commands: " + ", ".join(f"`{name}`" for name, sub in groups.items() if not sub.hidden), ""]
        if params:
            out += ["| option | default | meaning |", "|---|---|---|"]
            out += [_option_row(param) for param in params]
            out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    which = {"cli": cli_reference, "config": config_reference}
    if len(argv) != 1 or argv[0] not in which:
        sys.stderr.write("usage: python -m provisioner.cli.reference cli|config\n")
        return 2
    sys.stdout.write(which[argv[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
