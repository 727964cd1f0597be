"""The TOML configuration file -> typed settings. The only module that reads configuration.

Every key is checked: an unknown key, a wrong type or a bad value stops the run with the file and the key
named (TOML syntax errors also carry the line), before anything is sent. Passwords are never read from here.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

from provisioner.domain.model import format_characters, identity_problem
from provisioner.errors import InputError
from provisioner.inputs.discovery import ENV, Located, locate
from provisioner.inputs.files import read_regular
from provisioner.inputs.identity import column_problem, wildcard_problem
from provisioner.inputs.schema import Spec, setting, specs, type_problem
from provisioner.inputs.schema import problem as setting_problem

Auth = Literal["kerberos", "negotiate", "ntlm", "basic", "certificate", "credssp"]
Scheme = Literal["http", "https"]
Mode = Literal["command", "script"]
Backend = Literal["psrp", "exo"]
Cloud = Literal["worldwide", "gcchigh", "dod"]
AUTH_METHODS: tuple[str, ...] = get_args(Auth)
MAX_CONFIG_BYTES = 1 << 20
"""A configuration file larger than this (1 MiB) is refused: no real one comes close."""
MAX_TIMEOUT = 3600  # seconds: an hour per request or connection is already far beyond Exchange's own limits
MAX_WAIT = 86400  # seconds of backoff: a day


@dataclass(frozen=True)
class ExoSettings:
    """``[exo]``: Exchange Online over its REST endpoint (``connection.backend = "exo"``), app-only with a
    certificate. No secret is kept here: the certificate's private key stays in its file (its passphrase, if any,
    comes from ``PROVISIONER_CERTIFICATE_PASSWORD``)."""

    tenant: str | None = setting(None, "Tenant GUID or initial domain (contoso.onmicrosoft.com): the token authority")
    app_id: str | None = setting(None, "The app registration's Application (client) ID")
    certificate: str | None = setting(
        None, "PEM file with the private key and the certificate (relative: to the config file)")
    organization: str | None = setting(
        None, "Initial domain for the reviewed script's Connect-ExchangeOnline -Organization")
    certificate_pfx: str | None = setting(
        None, "Reviewed script only: -CertificateFilePath (else -CertificateThumbprint)")
    cloud: Cloud = setting("worldwide", "The Microsoft 365 cloud")
    host: str | None = setting(None, "Override of the REST endpoint's base URL (https://host[:port])")
    login_host: str | None = setting(None, "Override of the token authority's base URL (https://host[:port])")
    ca_bundle: str | None = setting(None, "CA bundle for both endpoints (tests and the lab's throwaway CA)")
    batch: bool = setting(True, "Send independent calls as $batch requests (at most 10 each)")
    page_size: int = setting(1000, "Prefer: odata.maxpagesize", low=1, high=1000)
    timeout: int = setting(60, "Seconds per HTTP request", low=1, high=MAX_TIMEOUT)
    retry_attempts: int = setting(
        6, "Attempts per call, for 429/502/503/504, connection errors and transient exception types", low=1, high=20)
    retry_base_seconds: float = setting(
        0.5, "First backoff without Retry-After; doubles per attempt (jitter), capped at 30 s", low=0, high=MAX_WAIT)
    retry_max_seconds: float = setting(120.0, "Waiting per call, in all", low=0, high=MAX_WAIT)


MAX_RUN_DEADLINE_SECONDS = 7 * 24 * 3600  # a week: beyond that, a deadline is a typo


@dataclass(frozen=True)
class Connection:
    server: str | None = setting(None, "Exchange server FQDN")
    port: int | None = setting(None, "TCP port (default: 80 for http, 443 for https)", low=1, high=65535)
    scheme: Scheme = setting("http", "http or https")
    path: str = setting("PowerShell", "The remote PowerShell virtual directory")
    configuration_name: str = setting("Microsoft.Exchange", "The PowerShell endpoint (session configuration)")
    auth: Auth = setting("kerberos", "Authentication method")
    username: str | None = setting(None, "Account to connect as (password: PROVISIONER_PASSWORD or the keyring)")
    cert_validation: bool = setting(True, "Validate the server's TLS certificate")
    ca_bundle: str | None = setting(None, "CA bundle to validate the server's certificate with")
    certificate_pem: str | None = setting(None, "Client certificate (auth = certificate)")
    certificate_key_pem: str | None = setting(None, "Client certificate's private key (auth = certificate)")
    operation_timeout: int = setting(20, "Seconds the server may take per WS-Management operation",
                                     low=1, high=MAX_TIMEOUT)
    connection_timeout: int = setting(30, "Seconds to wait for a connection", low=1, high=MAX_TIMEOUT)
    run_deadline_seconds: int = setting(
        6 * 3600, "The whole run's deadline: nothing is sent after it, the rest is unknown (exit 4)",
        low=1, high=MAX_RUN_DEADLINE_SECONDS)
    insecure_lab: bool = setting(False, "Allow Basic over plain http: only for the lab endpoint")
    mode: Mode = setting("command", "command (NoLanguage endpoints) or script")
    preamble: str | None = setting(
        None, "Script mode: run before the steps (e.g. Connect-ExchangeOnline ...)", empty_ok=True,
        checked_text=False)
    domain_controller: str | None = setting(None, "Pin reads and writes to this domain controller")
    spn_service: str = setting(
        "HTTP", "SPN service class (Exchange's /PowerShell vdir is HTTP/<fqdn>; pypsrp would ask for WSMAN/<fqdn>)")
    spn_hostname: str | None = setting(None, "SPN host for load-balanced namespaces or connecting by IP")
    keytab: str | None = setting(
        None, "Kerberos client keytab for unattended runs (relative paths: to the config file)")
    principal: str | None = setting(None, "Kerberos principal (user@REALM) to use from the ticket cache or keytab")
    keyring_service: str | None = setting(
        None, "Take the password from the OS keyring: keyring.get_password(this, username)")
    batch_size: int = setting(
        500, "(mailbox, trustee) items per pipeline (piped: one invocation over them)", low=1, high=5000)
    read_batch_size: int = setting(
        2000, "Mailboxes per read invocation (ids | Get-Mailbox | Get-MailboxPermission -User T); batch_size is the "
        "write batch", low=1, high=50000)
    parallel: int = setting(
        1, "Pipelines at once; Exchange's throttling policy limits concurrent shells per user", low=1, high=16)
    fast_wire: bool = setting(
        False, "Deprecated, ignored (a note says so): the tool's own client is always used")
    backend: Backend = setting("psrp", 'psrp (PowerShell remoting) or exo (Exchange Online REST, the [exo] table)')
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
class RunSettings:
    """The ``[reapply]`` table: how every run plans, journals, verifies and retries, grant and revoke included (the
    table keeps its first name, so existing configurations stay valid)."""

    max_changes: int = setting(500, "A larger plan is refused (exit 6) unless --force", low=0, high=10_000_000)
    journal: Path | None = setting(None, "JSON-lines change journal (relative: to the config file)")
    lock_file: Path | None = setting(None, "The run lock (default: the journal's path + .lock)")
    report: Path | None = setting(None, "JSON report written after each run")
    metrics_file: Path | None = setting(None, "Prometheus textfile written after each run")
    verify: bool = setting(
        True, "Re-read every change the server's own output did not prove; re-check once after the delay")
    verify_proven: bool = setting(False, "Also re-read changes the output proved (the ACE object a grant returns)")
    verify_delay_seconds: float = setting(
        5.0, "A change not visible yet is re-checked once after this delay", low=0, high=MAX_TIMEOUT)
    retry_attempts: int = setting(4, "Attempts per batch, for transient errors (transport, throttling)",
                                  low=1, high=20)
    retry_base_seconds: float = setting(
        2.0, "First backoff; doubles per attempt (with jitter), capped at 60 s", low=0, high=MAX_WAIT)
    retry_max_seconds: float = setting(300.0, "Waiting per batch, in all", low=0, high=MAX_WAIT)
    prune_unowned: bool = setting(
        False, "--prune also removes explicit grants provisioner did not make (opt-in)")


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
    reapply: RunSettings = field(default_factory=RunSettings)
    column: str | None = None  # [targets] column: the users files' identity column (--column overrides it)


TARGETS_KEYS = ("mailboxes", "users_file", "users_files", "selector", "exclude", "column")
_EXO_PATHS = ("certificate", "certificate_pfx", "ca_bundle")  # relative to the config file
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

    def identity(self, value: str, key: str) -> str:
        """A mailbox or trustee identity: Exchange text, and no wildcard (Exchange would expand it)."""
        self.text(value, key, identity=True)
        problem = wildcard_problem(value)
        if problem is not None:
            raise self.fail(key, problem)
        return value


def load_config(path: Path) -> Config:
    """Read and validate ``path``. Relative users-file paths are relative to the config file's folder."""
    reader = _Reader(path)
    raw = read_regular(path, "configuration file", MAX_CONFIG_BYTES)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
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
    exclude = _strings(reader, targets, "exclude", "targets.", identities=True)
    column = _column(reader, targets)
    reapply = _reapply(reader, data.get("reapply", {}), path.parent)
    return Config(path, connection, trustees, automapping, mailboxes, users_files, selectors, exclude, reapply, column)


def _check_preamble(reader: _Reader, preamble: str) -> None:
    """The preamble is code, written into the reviewed script as is: no format character (a bidirectional
    override or a zero-width character) may hide what it does from the reviewer."""
    found = format_characters(preamble)
    if found:
        index, char = found[0]
        line = preamble.count("\n", 0, index - 1) + 1
        raise reader.fail("connection.preamble", f"format character U+{ord(char):04X} on line {line} of the preamble "
                          "(invisible in the reviewed script)")


def _settings(reader: _Reader, table: Mapping[str, Any], cls: type, prefix: str) -> dict[str, Any]:
    """The values of ``table`` for the settings dataclass ``cls``, each checked against the schema."""
    table_specs: dict[str, Spec] = specs(cls)
    reader.check_keys(table, list(table_specs), prefix)
    values: dict[str, Any] = {}
    for name, spec in table_specs.items():
        if name not in table:
            continue
        value = table[name]
        why = type_problem(spec, value) or setting_problem(spec, value)
        if why is not None:
            raise reader.fail(f"{prefix}{name}", why)
        values[name] = value
    return values


def _connection(reader: _Reader, table: Mapping[str, Any]) -> Connection:
    values = _settings(reader, table, Connection, "connection.")
    if "preamble" in values:
        _check_preamble(reader, values["preamble"])
    if "keytab" in values:
        values["keytab"] = str(reader.path.parent / values["keytab"])
    return Connection(**values)


def _exo(reader: _Reader, table: Mapping[str, Any]) -> ExoSettings:
    values = _settings(reader, table, ExoSettings, "exo.")
    for name in ("host", "login_host"):
        if name in values and not values[name].startswith("https://"):
            raise reader.fail(f"exo.{name}", "must be an https:// URL")
    for name in _EXO_PATHS:
        if name in values:
            values[name] = str(reader.path.parent / values[name])
    return ExoSettings(**values)


_TRUSTEE_KEYS = ("admin_user", "service_account", "automapping", "extra")


def _trustees(reader: _Reader, table: Mapping[str, Any]) -> tuple[tuple[TrusteeSpec, ...], bool]:
    reader.check_keys(table, _TRUSTEE_KEYS, "trustees.")
    specs: list[TrusteeSpec] = []
    for name, role in (("admin_user", "admin-user"), ("service_account", "service-account")):
        if name in table:
            value = reader.typed(table, name, str, "trustees.")
            specs.append(TrusteeSpec(reader.identity(value, f"trustees.{name}"), role))
    automapping = bool(reader.typed(table, "automapping", bool, "trustees.")) if "automapping" in table else False
    extra = table.get("extra", [])
    if not isinstance(extra, list):
        raise reader.fail("trustees.extra", "expected an array of tables ([[trustees.extra]])")
    for index, entry in enumerate(extra, start=1):
        key = f"trustees.extra[{index}]"
        if isinstance(entry, str):
            specs.append(TrusteeSpec(reader.identity(entry, key), "trustee"))
            continue
        if not isinstance(entry, dict):
            raise reader.fail(key, "expected a table with 'identity' and optional 'automapping', or a string")
        reader.check_keys(entry, ("identity", "automapping"), f"{key}.")
        if "identity" not in entry:
            raise reader.fail(key, "missing 'identity'")
        identity = reader.identity(reader.typed(entry, "identity", str, f"{key}."), f"{key}.identity")
        mapping = cast(bool, reader.typed(entry, "automapping", bool, f"{key}.")) if "automapping" in entry else None
        specs.append(TrusteeSpec(identity, "trustee", mapping))
    return tuple(specs), automapping


def _targets(reader: _Reader, table: Mapping[str, Any], base: Path) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    reader.check_keys(table, TARGETS_KEYS, "targets.")
    mailboxes = list(_strings(reader, table, "mailboxes", "targets.", identities=True))
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


def _column(reader: _Reader, table: Mapping[str, Any]) -> str | None:
    """``[targets] column``: the users files' identity column (any header name), as ``--column``."""
    if "column" not in table:
        return None
    value = reader.typed(table, "column", str, "targets.")
    problem = column_problem(value)
    if problem is not None:
        raise reader.fail("targets.column", problem)
    return cast(str, value)


def _strings(reader: _Reader, table: Mapping[str, Any], name: str, prefix: str, *, identities: bool = False
             ) -> tuple[str, ...]:
    raw = table.get(name, [])
    if not isinstance(raw, list):
        raise reader.fail(f"{prefix}{name}", "expected an array of strings")
    values: list[str] = []
    for index, value in enumerate(raw, start=1):
        if not isinstance(value, str):
            raise reader.fail(f"{prefix}{name}[{index}]", f"expected a string, got {type(value).__name__}")
        key = f"{prefix}{name}[{index}]"
        values.append(reader.identity(value, key) if identities else reader.text(value, key, identity=True))
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


def _reapply(reader: _Reader, table: Mapping[str, Any], base: Path) -> RunSettings:
    values = _settings(reader, table, RunSettings, "reapply.")
    for name, spec in specs(RunSettings).items():
        if spec.kind is Path and name in values:
            values[name] = base / values[name]
    return RunSettings(**values)


def discover(path: Path | None) -> Config:
    """The configuration a run uses, searched as :mod:`provisioner.inputs.discovery` says (``--config``,
    ``PROVISIONER_CONFIG``, ``./provisioner.toml``, the user's folder, the system's); empty when none is found."""
    return load_located(locate(path))


def load_located(found: Located) -> Config:
    """Read the file the search found (an explicit one that is missing is an error naming who chose it)."""
    if found.path is None:
        return Config()
    if found.explicit and not found.path.exists():  # anything else there is named precisely by load_config
        chosen_by = "--config" if found.origin == "--config" else f"the {ENV} environment variable"
        raise InputError(f"configuration file not found (named by {chosen_by})", where=str(found.path))
    return load_config(found.path)
