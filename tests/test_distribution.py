"""The distribution as published: every third-party module imported by the product and the lab (lazy imports
included) is declared, in the right place, and nothing declared goes unused; the version has one source; the
license and the changelog are there."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from provisioner import __version__
from provisioner.version import DISTRIBUTION, commit, describe

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FIRST_PARTY = {"provisioner", "provisioner_lab"}
# Modules whose distribution has another name, for when it is not installed here (packages_distributions knows
# the installed ones).
KNOWN = {"spnego": "pyspnego", "jwt": "PyJWT", "keyring": "keyring", "gssapi": "gssapi", "krb5": "krb5"}
# Imported only where an extra is installed (the import is guarded and the error says which extra).
OPTIONAL = {"keyring": "keyring"}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    found = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match, requirement
        found.add(normal(match.group(0)))
    return found


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere in ``folder`` (inside functions too) -> files."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def installed_modules() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def distribution_of(module: str) -> str:
    installed = installed_modules().get(module)
    if installed:
        return normal(installed[0])
    assert module in KNOWN, f"module {module!r} maps to no known distribution: add it to KNOWN"
    return normal(KNOWN[module])


def test_the_product_declares_every_module_it_imports_and_imports_every_dependency() -> None:
    project = PYPROJECT["project"]
    core = requirement_names(project["dependencies"])
    extras = {name: requirement_names(reqs) for name, reqs in project["optional-dependencies"].items()}
    imported = imported_modules(ROOT / "provisioner")
    used: set[str] = set()
    for module, files in imported.items():
        dist = distribution_of(module)
        used.add(dist)
        if module in OPTIONAL:
            assert dist in extras[OPTIONAL[module]], f"{module} ({sorted(files)}) is not in [{OPTIONAL[module]}]"
        else:
            assert dist in core, f"{module} is imported by {sorted(files)} but {dist} is not a dependency"
    assert core <= used, f"declared but never imported: {sorted(core - used)}"


def test_the_lab_declares_every_module_it_imports_in_its_extra() -> None:
    lab = requirement_names(PYPROJECT["project"]["optional-dependencies"]["lab"])
    imported = {distribution_of(module): files for module, files in imported_modules(ROOT / "lab").items()}
    for dist, files in imported.items():
        assert dist in lab, f"{dist} is imported by {sorted(files)} but is not in the lab extra"
    assert lab <= set(imported), f"in the lab extra but never imported: {sorted(lab - set(imported))}"


def test_the_wheel_holds_both_packages_and_test_brings_the_lab() -> None:
    hatch = PYPROJECT["tool"]["hatch"]
    assert hatch["build"]["targets"]["wheel"]["packages"] == ["provisioner", "lab/provisioner_lab"]
    assert f"{DISTRIBUTION}[lab]" in PYPROJECT["project"]["optional-dependencies"]["test"]
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert PYPROJECT["project"]["scripts"] == {"provisioner": "provisioner.cli:main"}


def test_the_version_has_one_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "provisioner/version.py"
    assert importlib.metadata.version(DISTRIBUTION) == __version__
    repeated = [path for path in [*(ROOT / "provisioner").rglob("*.py"), *(ROOT / "lab").rglob("*.py")]
                if path.name != "version.py" and f'"{__version__}"' in path.read_text(encoding="utf-8")]
    assert not repeated, f"the release is written again in {repeated}"


def test_the_commit_is_known_in_a_checkout_and_shown_by_version() -> None:
    value = commit()
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", value), value
    assert describe() == f"provisioner {__version__} ({DISTRIBUTION}, commit {value})"


def test_license_and_changelog() -> None:
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert PYPROJECT["project"]["license"] == "MIT"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and f"## [{__version__}] - " in changelog
    assert "keepachangelog.com" in changelog
