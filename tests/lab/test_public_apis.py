"""The lab uses its dependencies through their public APIs: its own MD4/NT hash (RFC 1320 and MS-NLMP vectors) and
SPNEGO reject token instead of pyspnego's private modules; an import scan keeps new private imports out."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from provisioner_lab.auth import spnego_reject
from provisioner_lab.ntlmhash import md4, nt_hash

LAB = Path(__file__).parent.parent.parent / "lab" / "provisioner_lab"
# psrpcore internals the lab still overrides for its fast paths (psrpcore is pinned to 0.3.1 for them). This list
# may only shrink: a new private import of any dependency fails the test below.
KNOWN_PRIVATE = {("psrp.py", "psrpcore._payload")}


@pytest.mark.parametrize(
    ("data", "digest"),
    [  # RFC 1320, A.5 "Test suite"
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ],
)
def test_md4_matches_the_rfc_test_suite(data: bytes, digest: str) -> None:
    assert md4(data).hex() == digest


def test_nt_hash_matches_known_values() -> None:
    assert nt_hash("password").hex().upper() == "8846F7EAEE8FB117AD06BDD830B7586C"
    assert nt_hash("").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"


def test_spnego_reject_is_rfc4178_der() -> None:
    assert spnego_reject(b"\x01\x02\x03").hex() == "a10e300ca0030a0102a2050403010203"
    long = spnego_reject(b"x" * 300)
    assert long[:12].hex() == "a182013d30820139a0030a01" and long.endswith(b"x" * 300)


def test_the_lab_imports_no_new_private_module_of_a_dependency() -> None:
    found = set()
    for path in LAB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in sys.stdlib_module_names or top == "provisioner_lab":
                    continue
                if any(part.startswith("_") for part in name.split(".")):
                    found.add((str(path.relative_to(LAB)), name))
    assert found == KNOWN_PRIVATE
