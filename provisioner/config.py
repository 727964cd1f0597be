"""The TOML configuration file -> typed settings. The only module that reads configuration.

Every key is checked: an unknown key, a wrong type or a bad value stops the run with the file and the key
named (TOML syntax errors also carry the line), before anything is sent. Passwords are never read from here.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

from provisioner.discovery import ENV, Located, locate
from provisioner.errors import InputError
from provisioner.model import format_characters, identity_problem

Auth = Literal["kerberos", "negotiate", "ntlm", "basic", "certificate", "credssp"]
Scheme = Literal["http", "https"]
Mode = Literal["command", "script"]
Backend = Literal["psrp", "exo"]
Cloud = Literal["worldwide", "gcchigh", "dod"]
AUTH_METHODS: tuple[str, ...] = get_args(Auth)


@dataclass(frozen=True)
class ExoSettings:
    """``[exo]``: Exchange Online over its REST endpoint (``connection.backend = "exo"``), app-only with a
    certificate. No secret is kept here: the certificate's private key stays in its file (its passphrase, if any,
    comes from ``PROVISIONER_CERTIFICATE_PASSWORD``)."""

    tenant: str | None = None  # tenant GUID or initial domain (contoso.onmicrosoft.com): the token authority
    app_id: str | None = None  # the app registration's Application (client) ID
    certificate: str | None = None  # PEM file with the private key and the certificate (relative: to the config)
    organization: str | None = None  # initial domain for the reviewed script's Connect-ExchangeOnline -Organization
    certificate_pfx: str | None = None  # reviewed script only: -CertificateFilePath (else -CertificateThumbprint)
    cloud: Cloud = "worldwide"
    host: str | None = None  # override of the REST endpoint's base URL (https://host[:port])
    login_host: str | None = None  # override of the token authority's base URL (https://host[:port])
    ca_bundle: str | None = None  # CA bundle for both (tests and the lab's throwaway CA)
    batch: bool = True  # send independent calls as $batch requests (at most 10 each)
    page_size: int = 1000  # Prefer: odata.maxpagesize
    timeout: int = 60  # seconds per HTTP request
    retry_attempts: int = 6  # per call, for 429/502/503/504, connection errors and transient exception types
    retry_base_seconds: float = 0.5  # first backoff without Retry-After; doubles per attempt (jitter), capped at 30 s
    retry_max_seconds: float = 120.0  # waiting per call, in all


MAX_RUN_DEADLINE_SECONDS = 7 * 24 * 3600  # a week: beyond that, a deadline is a typo


@dataclass(frozen=True)
class Connection:
    server: str | None = None
    port: int | None = None  # default: 80 for http, 443 for https
    scheme: Scheme = "http"
    path: str = "PowerShell"
    configuration_name: str = "Microsoft.Exchange"
    auth: Auth = "kerberos"
    username: str | None = None
    cert_validation: bool = True
    ca_bundle: str | None = None
    certificate_pem: str | None = None
    certificate_key_pem: str | None = None
    operation_timeout: int = 20
    connection_timeout: int = 30
    run_deadline_seconds: int = 6 * 3600  # the whole run: nothing is sent after it (provisioner.executors.guard)
    insecure_lab: bool = False  # allows Basic over plain http: only for the lab endpoint
    mode: Mode = "command"
    preamble: str | None = None  # script mode: run before the steps (e.g. Connect-ExchangeOnline ...)
    domain_controller: str | None = None
    spn_service: str = "HTTP"  # Exchange's /PowerShell vdir is HTTP/<fqdn>; pypsrp would ask for WSMAN/<fqdn>
    spn_hostname: str | None = None  # SPN host for load-balanced namespaces or connecting by IP
    keytab: str | None = None  # Kerberos client keytab for unattended runs (relative paths: to the config file)
    principal: str | None = None  # Kerberos principal (user@REALM) to use from the ticket cache or the keytab
    keyring_service: str | None = None  # the password from the OS keyring: keyring.get_password(this, username)
    batch_size: int = 500  # (mailbox, trustee) items per pipeline (piped: one invocation over them)
    parallel: int = 1  # pipelines at once; Exchange's throttling policy limits concurrent shells per user
    fast_wire: bool = False  # deprecated, ignored (a note says so): the tool's own client is always used
    backend: Backend = "psrp"  # "exo": Exchange Online over REST (the [exo] table), no PowerShell remoting
    exo: ExoSettings = field(default_factory=ExoSettings)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (443 if self.scheme == "https" else 80)

    def with_overrides(self, **overrides: Any) -> Connection:
        return replace(self, **{name: value for name, value in overrides.items() if value is not None})


@dataclass(frozen=True)
class TrusteeSpec:
    identity: str
    role: str
    automapping: bool | None = None  # None: the run's default (off)


SELECTOR_KINDS = ("organizational_unit", "group", "filter")


@dataclass(frozen=True)
class Selector:
    """Mailboxes resolved live on Exchange: an OU, a distribution group's members (nested groups expanded) or an
    OPATH filter, limited to the given RecipientTypeDetails."""

    kind: str  # one of SELECTOR_KINDS
    value: str
    recipient_type_details: tuple[str, ...] = ("UserMailbox",)
    allow_empty: bool = False  # a pruning run goes on when this selector matches no mailbox (else it stops)

    def __str__(self) -> str:
        return f"{self.kind} {self.value!r}"


@dataclass(frozen=True)
class ReapplySettings:
    max_changes: int = 500  # a larger plan is refused (exit 6) unless --force
    journal: Path | None = None
    lock_file: Path | None = None  # default: the journal's path + ".lock"
    report: Path | None = None
    metrics_file: Path | None = None
    verify: bool = True  # re-read every change the server's own output did not prove; re-check once after the delay
    verify_proven: bool = False  # also re-read changes the output proved (the ACE object a grant returns)
    verify_delay_seconds: float = 5.0  # a change not visible yet is re-checked once after this delay
    retry_attempts: int = 4  # per batch, for transient errors (transport, throttling)
    retry_base_seconds: float = 2.0  # first backoff; doubles per attempt (with jitter), capped at 60 s
    retry_max_seconds: float = 300.0  # per batch, in all
    prune_unowned: bool = False  # --prune also removes explicit grants provisioner did not make (opt-in)


@dataclass(frozen=True)
class Config:
    source: Path | None = None
    connection: Connection = field(default_factory=Connection)
    trustees: tuple[TrusteeSpec, ...] = ()
    automapping: bool = False
    mailboxes: tuple[str, ...] = ()
    users_files: tuple[Path, ...] = ()
    selectors: tuple[Selector, ...] = ()
    exclude: tuple[str, ...] = ()
    reapply: ReapplySettings = field(default_factory=ReapplySettings)


_CONNECTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "server": str,
    "port": int,
    "scheme": str,
    "path": str,
    "configuration_name": str,
    "auth": str,
    "username": str,
    "cert_validation": bool,
    "ca_bundle": str,
    "certificate_pem": str,
    "certificate_key_pem": str,
    "operation_timeout": int,
    "connection_timeout": int,
    "run_deadline_seconds": int,
    "insecure_lab": bool,
    "mode": str,
    "preamble": str,
    "domain_controller": str,
    "spn_service": str,
    "spn_hostname": str,
    "keytab": str,
    "principal": str,
    "keyring_service": str,
    "batch_size": int,
    "parallel": int,
    "fast_wire": bool,
    "backend": str,
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "scheme": get_args(Scheme),
    "auth": AUTH_METHODS,
    "mode": get_args(Mode),
    "backend": get_args(Backend),
}
_EXO_TYPES: dict[str, type | tuple[type, ...]] = {
    "tenant": str,
    "app_id": str,
    "certificate": str,
    "organization": str,
    "certificate_pfx": str,
    "cloud": str,
    "host": str,
    "login_host": str,
    "ca_bundle": str,
    "batch": bool,
    "page_size": int,
    "timeout": int,
    "retry_attempts": int,
    "retry_base_seconds": (int, float),
    "retry_max_seconds": (int, float),
}
_EXO_PATHS = ("certificate", "certificate_pfx", "ca_bundle")
_SECTIONS = ("connection", "trustees", "targets", "reapply", "exo")


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> InputError:
        return InputError(f"{key}: {message}", where=str(self.path))

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...] | list[str], prefix: str) -> None:
        for name in table:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
                raise self.fail(f"{prefix}{name}", "unknown key" + hint)

    def typed(self, table: Mapping[str, Any], name: str, kind: type | tuple[type, ...], prefix: str) -> Any:
        value = table[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; TOML keeps them apart, so do we.
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"{prefix}{name}", f"expected {expected}, got {type(value).__name__}")
        return value

    def text(self, value: str, key: str, *, identity: bool = False) -> str:
        problem = identity_problem(value)
        if problem is not None and (identity or value):
            raise self.fail(key, problem)
        return value


def load_config(path: Path) -> Config:
    """Read and validate ``path``. Relative users-file paths are relative to the config file's folder."""
    reader = _Reader(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise InputError("configuration file not found", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read configuration file: {exc}", where=str(path)) from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"invalid TOML: not UTF-8 (byte 0x{raw[exc.start]:02x} at line {line})"
        raise InputError(message, where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", where=str(path)) from None
    except (ValueError, RecursionError) as exc:  # tomllib: an integer over 4300 digits, or nesting too deep
        raise InputError(f"invalid TOML: {type(exc).__name__}: {exc}", where=str(path)) from None
    reader.check_keys(data, _SECTIONS, "")
    for section in _SECTIONS:
        if section in data and not isinstance(data[section], dict):
            raise reader.fail(section, "expected a table")
    connection = _connection(reader, data.get("connection", {}))
    if "exo" in data:
        connection = replace(connection, exo=_exo(reader, data["exo"]))
    trustees, automapping = _trustees(reader, data.get("trustees", {}))
    targets = data.get("targets", {})
    mailboxes, users_files = _targets(reader, targets, path.parent)
    selectors = _selectors(reader, targets.get("selector", []))
    exclude = _strings(reader, targets, "exclude", "targets.")
    reapply = _reapply(reader, data.get("reapply", {}), path.parent)
    return Config(path, connection, trustees, automapping, mailboxes, users_files, selectors, exclude, reapply)


def _check_preamble(reader: _Reader, preamble: str) -> None:
    """The preamble is code, written into the reviewed script as is: no format character (a bidirectional
    override or a zero-width character) may hide what it does from the reviewer."""
    found = format_characters(preamble)
    if found:
        index, char = found[0]
        line = preamble.count("\n", 0, index - 1) + 1
        raise reader.fail("connection.preamble", f"format character U+{ord(char):04X} on line {line} of the preamble "
                          "(invisible in the reviewed script)")


def _connection(reader: _Reader, table: Mapping[str, Any]) -> Connection:
    reader.check_keys(table, list(_CONNECTION_TYPES), "connection.")
    values: dict[str, Any] = {}
    for name, kind in _CONNECTION_TYPES.items():
        if name not in table:
            continue
        value = reader.typed(table, name, kind, "connection.")
        if name in _CHOICES and value not in _CHOICES[name]:
            raise reader.fail(f"connection.{name}", f"'{value}' is not one of {', '.join(_CHOICES[name])}")
        if isinstance(value, str) and name != "preamble":
            reader.text(value, f"connection.{name}", identity=name in ("server", "domain_controller"))
        if name == "preamble":
            _check_preamble(reader, value)
        values[name] = value
    for name in ("keytab", "principal"):
        if values.get(name) == "":
            raise reader.fail(f"connection.{name}", "must not be empty")
    if "keytab" in values:
        values["keytab"] = str(reader.path.parent / values["keytab"])
    port = values.get("port")
    if port is not None and not 0 < port < 65536:
        raise reader.fail("connection.port", f"{port} is not a TCP port")
    for name in ("operation_timeout", "connection_timeout"):
        if name in values and values[name] <= 0:
            raise reader.fail(f"connection.{name}", "must be a positive number of seconds")
    for name, top in (("batch_size", 5000), ("parallel", 16), ("run_deadline_seconds", MAX_RUN_DEADLINE_SECONDS)):
        if name in values and not 1 <= values[name] <= top:
            raise reader.fail(f"connection.{name}", f"must be between 1 and {top}")
    return Connection(**values)


def _exo(reader: _Reader, table: Mapping[str, Any]) -> ExoSettings:
    reader.check_keys(table, list(_EXO_TYPES), "exo.")
    values: dict[str, Any] = {}
    for name, kind in _EXO_TYPES.items():
        if name not in table:
            continue
        value = reader.typed(table, name, kind, "exo.")
        if isinstance(value, str):
            if not value:
                raise reader.fail(f"exo.{name}", "must not be empty")
            reader.text(value, f"exo.{name}", identity=True)
        if name in _EXO_PATHS:
            value = str(reader.path.parent / value)
        values[name] = value
    if "cloud" in values and values["cloud"] not in get_args(Cloud):
        raise reader.fail("exo.cloud", f"'{values['cloud']}' is not one of {', '.join(get_args(Cloud))}")
    for name in ("host", "login_host"):
        if name in values and not values[name].startswith("https://"):
            raise reader.fail(f"exo.{name}", "must be an https:// URL")
    if "page_size" in values and not 1 <= values["page_size"] <= 1000:
        raise reader.fail("exo.page_size", "must be between 1 and 1000")
    if "timeout" in values and values["timeout"] <= 0:
        raise reader.fail("exo.timeout", "must be a positive number of seconds")
    if "retry_attempts" in values and not 1 <= values["retry_attempts"] <= 20:
        raise reader.fail("exo.retry_attempts", "must be between 1 and 20")
    for name in ("retry_base_seconds", "retry_max_seconds"):
        if name in values and not (math.isfinite(values[name]) and values[name] >= 0):
            raise reader.fail(f"exo.{name}", "must be a finite number of seconds, not negative")
    return ExoSettings(**values)


_TRUSTEE_KEYS = ("admin_user", "service_account", "automapping", "extra")


def _trustees(reader: _Reader, table: Mapping[str, Any]) -> tuple[tuple[TrusteeSpec, ...], bool]:
    reader.check_keys(table, _TRUSTEE_KEYS, "trustees.")
    specs: list[TrusteeSpec] = []
    for name, role in (("admin_user", "admin-user"), ("service_account", "service-account")):
        if name in table:
            value = reader.typed(table, name, str, "trustees.")
            specs.append(TrusteeSpec(reader.text(value, f"trustees.{name}", identity=True), role))
    automapping = bool(reader.typed(table, "automapping", bool, "trustees.")) if "automapping" in table else False
    extra = table.get("extra", [])
    if not isinstance(extra, list):
        raise reader.fail("trustees.extra", "expected an array of tables ([[trustees.extra]])")
    for index, entry in enumerate(extra, start=1):
        key = f"trustees.extra[{index}]"
        if isinstance(entry, str):
            specs.append(TrusteeSpec(reader.text(entry, key, identity=True), "trustee"))
            continue
        if not isinstance(entry, dict):
            raise reader.fail(key, "expected a table with 'identity' and optional 'automapping', or a string")
        reader.check_keys(entry, ("identity", "automapping"), f"{key}.")
        if "identity" not in entry:
            raise reader.fail(key, "missing 'identity'")
        identity = reader.text(reader.typed(entry, "identity", str, f"{key}."), f"{key}.identity", identity=True)
        mapping = cast(bool, reader.typed(entry, "automapping", bool, f"{key}.")) if "automapping" in entry else None
        specs.append(TrusteeSpec(identity, "trustee", mapping))
    return tuple(specs), automapping


def _targets(reader: _Reader, table: Mapping[str, Any], base: Path) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    reader.check_keys(table, ("mailboxes", "users_file", "users_files", "selector", "exclude"), "targets.")
    mailboxes = list(_strings(reader, table, "mailboxes", "targets."))
    files: list[Path] = []
    for name in ("users_file", "users_files"):
        raw = table.get(name)
        if raw is None:
            continue
        for index, value in enumerate(raw if isinstance(raw, list) else [raw], start=1):
            if not isinstance(value, str) or not value:
                raise reader.fail(f"targets.{name}", f"entry {index}: expected a file path")
            files.append(base / reader.text(value, f"targets.{name}[{index}]", identity=True))
    return tuple(mailboxes), tuple(files)


def _strings(reader: _Reader, table: Mapping[str, Any], name: str, prefix: str) -> tuple[str, ...]:
    raw = table.get(name, [])
    if not isinstance(raw, list):
        raise reader.fail(f"{prefix}{name}", "expected an array of strings")
    values: list[str] = []
    for index, value in enumerate(raw, start=1):
        if not isinstance(value, str):
            raise reader.fail(f"{prefix}{name}[{index}]", f"expected a string, got {type(value).__name__}")
        values.append(reader.text(value, f"{prefix}{name}[{index}]", identity=True))
    return tuple(values)


def _selectors(reader: _Reader, raw: Any) -> tuple[Selector, ...]:
    if not isinstance(raw, list):
        raise reader.fail("targets.selector", "expected an array of tables ([[targets.selector]])")
    selectors: list[Selector] = []
    for index, entry in enumerate(raw, start=1):
        key = f"targets.selector[{index}]"
        if not isinstance(entry, dict):
            raise reader.fail(key, "expected a table")
        reader.check_keys(entry, (*SELECTOR_KINDS, "recipient_type_details", "allow_empty"), f"{key}.")
        kinds = [kind for kind in SELECTOR_KINDS if kind in entry]
        if len(kinds) != 1:
            raise reader.fail(key, f"needs exactly one of {', '.join(SELECTOR_KINDS)}")
        value = reader.text(reader.typed(entry, kinds[0], str, f"{key}."), f"{key}.{kinds[0]}", identity=True)
        types = _strings(reader, entry, "recipient_type_details", f"{key}.") or ("UserMailbox",)
        for name in types:
            if not name.isalnum():
                raise reader.fail(f"{key}.recipient_type_details", f"'{name}' is not a RecipientTypeDetails value")
        allow_empty = bool(reader.typed(entry, "allow_empty", bool, f"{key}.")) if "allow_empty" in entry else False
        selectors.append(Selector(kinds[0], value, types, allow_empty))
    return tuple(selectors)


_REAPPLY_TYPES: dict[str, type | tuple[type, ...]] = {
    "max_changes": int,
    "journal": str,
    "lock_file": str,
    "report": str,
    "metrics_file": str,
    "verify": bool,
    "verify_proven": bool,
    "verify_delay_seconds": (int, float),
    "retry_attempts": int,
    "retry_base_seconds": (int, float),
    "retry_max_seconds": (int, float),
    "prune_unowned": bool,
}


def _reapply(reader: _Reader, table: Mapping[str, Any], base: Path) -> ReapplySettings:
    reader.check_keys(table, list(_REAPPLY_TYPES), "reapply.")
    values: dict[str, Any] = {}
    for name, kind in _REAPPLY_TYPES.items():
        if name not in table:
            continue
        value = reader.typed(table, name, kind, "reapply.")
        if isinstance(kind, type) and kind is str:
            value = base / reader.text(value, f"reapply.{name}", identity=True)
        elif not isinstance(value, bool) and value < 0:
            raise reader.fail(f"reapply.{name}", "must not be negative")
        elif isinstance(value, float) and not math.isfinite(value):
            raise reader.fail(f"reapply.{name}", f"must be a finite number, not {value}")
        values[name] = value
    return ReapplySettings(**values)


def discover(path: Path | None) -> Config:
    """The configuration a run uses, searched as :mod:`provisioner.discovery` says (``--config``,
    ``PROVISIONER_CONFIG``, ``./provisioner.toml``, the user's folder, the system's); empty when none is found."""
    return load_located(locate(path))


def load_located(found: Located) -> Config:
    """Read the file the search found (an explicit one that is missing is an error naming who chose it)."""
    if found.path is None:
        return Config()
    if found.explicit and not found.path.is_file():
        chosen_by = "--config" if found.origin == "--config" else f"the {ENV} environment variable"
        raise InputError(f"configuration file not found (named by {chosen_by})", where=str(found.path))
    return load_config(found.path)
