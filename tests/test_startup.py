"""Start-up stays cheap: ``provisioner --version`` and importing the CLI load no transport, TLS, template or terminal
library (each command imports what it uses when it runs). Checked by the modules a fresh interpreter has loaded,
not by a timing (benchmarks/startup.py measures the CPU time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pypsrp", "psrpcore", "requests", "spnego", "cryptography", "msal", "jinja2", "rich", "provisioner_lab",
         "xml.etree.ElementTree")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code", [
    "import provisioner.cli",
    "import sys; sys.argv = ['provisioner', '--version']\nfrom provisioner.cli import main\ntry:\n    main()\n"
    "except SystemExit:\n    pass",
])
def test_start_up_loads_no_heavy_library(code: str) -> None:
    loaded = loaded_after(code)
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY)
    assert heavy == []


def test_a_command_still_loads_what_it_needs() -> None:
    """The check above is not vacuous: running a command's help with a real run path imports its libraries."""
    loaded = loaded_after("from provisioner.transport.psrp import connect  # noqa: F401")
    assert "pypsrp" in {name.split(".")[0] for name in loaded}


def test_the_quick_version_says_what_the_option_says() -> None:
    """``provisioner --version`` alone (answered before the commands load) and the Typer option (with another
    option beside it) print the same line."""
    def version(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True,
                              timeout=60, check=True)
        return done.stdout

    quick = version("--version")
    assert quick.startswith("provisioner ") and quick == version("--log-format", "text", "--version")


def test_a_run_that_writes_no_script_loads_no_template_library() -> None:
    """A run's path (its engine, the PSRP client, the JSON/CSV/table outputs) leaves Jinja2 to the scripts and the
    HTML report, which import it when they render."""
    run_path = ("import provisioner.runs.jobs, provisioner.runs.reapply, provisioner.output.emit, "
                "provisioner.output.report, provisioner.transport.psrp.connect")
    assert "jinja2" not in {name.split(".")[0] for name in loaded_after(run_path)}
    rendering = loaded_after("from provisioner.powershell.render import environment\nenvironment()")
    assert "jinja2" in {name.split(".")[0] for name in rendering}
