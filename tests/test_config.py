"""Config loading: every key checked, errors name the file and the key, CLI overrides win."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import InputError
from provisioner.inputs.config import Connection, discover, load_config

EXAMPLES = Path(__file__).parent.parent / "examples"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "provisioner.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads() -> None:
    config = load_config(EXAMPLES / "provisioner.toml")
    assert config.connection.server == "exch01.contoso.com"
    assert config.connection.auth == "kerberos"
    assert config.connection.configuration_name == "Microsoft.Exchange"
    assert [(t.identity, t.role) for t in config.trustees] == [
        ("sync.admin@contoso.com", "admin-user"),
        ("svc-codetwo@contoso.com", "service-account"),
    ]
    assert config.users_files == (EXAMPLES / "users.csv",)
    assert config.automapping is False


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = discover(None)
    assert config.source is None and config.connection == Connection()
    assert config.connection.effective_port == 80
    assert Connection(scheme="https").effective_port == 443


def test_default_file_is_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, '[connection]\nserver = "exch02.contoso.com"\n')
    monkeypatch.chdir(tmp_path)
    assert discover(None).connection.server == "exch02.contoso.com"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[connection]\nsever = "x"\n', "connection.sever: unknown key (did you mean 'server'?)"),
        ('[conection]\nserver = "x"\n', "conection: unknown key"),
        ("[connection]\nport = \"80\"\n", "connection.port: expected int, got str"),
        ("[connection]\nport = 70000\n", "connection.port: 70000 is not between 1 and 65535"),
        ("[connection]\ninsecure_lab = 1\n", "connection.insecure_lab: expected bool, got int"),
        ("[connection]\nport = true\n", "connection.port: expected int, got bool"),
        ('[connection]\nauth = "kerb"\n', "connection.auth: 'kerb' is not one of kerberos"),
        ('[connection]\nserver = ""\n', "connection.server: must not be empty"),
        ('[trustees]\nadmin_user = "a\\nb"\n', "trustees.admin_user: line break"),
        ('[trustees]\nservice_account = "  "\n', "trustees.service_account: empty identity"),
        ("[trustees]\n[[trustees.extra]]\nautomapping = true\n", "trustees.extra[1]: missing 'identity'"),
        ('[targets]\nmailboxes = ["ok", 3]\n', "targets.mailboxes[2]: expected a string, got int"),
        ('[targets]\nmailboxes = ["a\\u0000b"]\n', "targets.mailboxes[1]: NUL character"),
        ('[connection]\npreamble = "Add-PSSnapin x\\n# \\u202e }"\n',
         "connection.preamble: format character U+202E on line 2 of the preamble"),
        ("[connection\n", "invalid TOML"),
        ('connection = "x"\n', "connection: expected a table"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_invalid_toml_carries_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[connection]\nserver = "x"\nport = = 3\n')
    with pytest.raises(InputError, match=r"line 3"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_extra_trustees_and_relative_users_files(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[trustees]\nautomapping = true\n[[trustees.extra]]\nidentity = "helpdesk"\nautomapping = false\n'
        '[[trustees.extra]]\nidentity = "auditor"\n[targets]\nusers_files = ["a.txt", "sub/b.csv"]\n',
    )
    config = load_config(path)
    assert [(t.identity, t.automapping) for t in config.trustees] == [("helpdesk", False), ("auditor", None)]
    assert config.automapping is True
    assert config.users_files == (tmp_path / "a.txt", tmp_path / "sub" / "b.csv")


def test_overrides_ignore_unset_values() -> None:
    base = Connection(server="a", auth="ntlm")
    assert base.with_overrides(server=None, auth="basic") == Connection(server="a", auth="basic")


def test_exo_table_is_read_and_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, '[connection]\nbackend = "exo"\n[exo]\ntenant = "contoso.onmicrosoft.com"\n'
                            'app_id = "app"\ncertificate = "app.pem"\ncloud = "gcchigh"\nbatch = false\n')
    connection = load_config(path).connection
    assert connection.backend == "exo" and connection.exo.cloud == "gcchigh" and connection.exo.batch is False
    assert connection.exo.certificate == str(tmp_path / "app.pem")  # relative to the config file
    for bad, key in (('cloud = "china"', "exo.cloud"), ('host = "http://x"', "exo.host"),
                     ("page_size = 5000", "exo.page_size"), ('tenantt = "x"', "exo.tenantt")):
        with pytest.raises(InputError, match=key.replace(".", r"\.")):
            load_config(_write(tmp_path, f"[exo]\n{bad}\n"))
