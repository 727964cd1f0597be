"""The lab uses its dependencies through their public APIs only, like the product: its own MD4/NT hash (RFC 1320
and MS-NLMP vectors) and SPNEGO reject token instead of pyspnego's private modules, its own PSRP framing
(:mod:`provisioner_lab.framing`) instead of psrpcore's; and a scan of every module under ``lab/provisioner_lab``
keeps private names out. The rule (Python's: a leading underscore is private to its module or class), checked for
every dependency, the standard library included:

1. no import of a private module or name from outside the lab: ``import psrpcore._payload``,
   ``from psrpcore._payload import ...``, ``from x import _name``;
2. no private attribute (``._name``; dunders are not private) read or written on anything but ``self`` or ``cls``,
   nor through ``getattr``/``setattr``/``hasattr``/``delattr`` with a literal name: ``event._ps_object``,
   ``super()._process_message(...)``, ``module._helper``, and the lab's own ``other._lock`` too (a lab class's
   private stays in that class; another class or module gets a public method);
3. ``self._name``/``cls._name`` only when the lab class itself, or a lab class it derives from, defines ``_name``
   (a method, a class attribute or dataclass field, an assignment to ``self._name``): anything else is a
   dependency base class's private (``self._send_buffer`` in a subclass of psrpcore's pool);
4. a lab class defines no private name a base class from outside the lab already has, as a class attribute or
   method or as an instance attribute that base's source assigns: overriding ``_process_SetMaxRunspaces`` or
   assigning ``self._cipher`` in a subclass of psrpcore's pool is using its private API as much as calling it.

The first three are read from the source (:func:`scan`); the fourth imports the lab's modules to walk each class's
bases (:func:`shadowed`). Tests on small sources show each rule catches what it names.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from provisioner_lab.auth import spnego_reject
from provisioner_lab.ntlmhash import md4, nt_hash

LAB = Path(__file__).parent.parent.parent / "lab" / "provisioner_lab"
_ATTRIBUTE_CALLS = {"getattr", "setattr", "hasattr", "delattr"}
_RECEIVERS = {"self", "cls"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _lab_sources() -> dict[str, str]:
    return {str(path.relative_to(LAB)): path.read_text(encoding="utf-8") for path in sorted(LAB.rglob("*.py"))}


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def own_names(node: ast.ClassDef) -> set[str]:
    """What a class defines itself: methods, class attributes and fields, and ``self.x``/``cls.x`` assignments."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names.update(target.id for target in item.targets if isinstance(target, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    for sub in ast.walk(node):
        targets: list[ast.expr] = []
        if isinstance(sub, ast.Assign):
            targets = list(sub.targets)
        elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
            targets = [sub.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and _base_name(target.value) in _RECEIVERS:
                names.add(target.attr)
    return names


def _imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.partition(".")[0]
            if top != "provisioner_lab":
                yield node.module
                yield from (f"{node.module}.{alias.name}" for alias in node.names if _private(alias.name))
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if not alias.name.startswith("provisioner_lab"))


def _accesses(node: ast.AST, cls: str | None) -> Iterator[tuple[ast.expr, str, int, str | None]]:
    """(receiver, attribute, line, enclosing lab class) of every private attribute access below ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield from _accesses(child, child.name)
            continue
        if isinstance(child, ast.Attribute) and _private(child.attr):
            yield child.value, child.attr, child.lineno, cls
        elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id in _ATTRIBUTE_CALLS
              and len(child.args) >= 2 and isinstance(child.args[1], ast.Constant)
              and isinstance(child.args[1].value, str) and _private(child.args[1].value)):
            yield child.args[0], child.args[1].value, child.lineno, cls
        yield from _accesses(child, cls)


def scan(sources: dict[str, str]) -> set[str]:
    """Rules 1-3 over ``{path: source}``: one ``path:line what`` per breach."""
    trees = {path: ast.parse(text) for path, text in sources.items()}
    classes: dict[str, list[ast.ClassDef]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, []).append(node)

    def defined(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        names: set[str] = set()
        for node in classes.get(name, []):
            names |= own_names(node)
            for base in node.bases:
                base_name = _base_name(base)
                if base_name in classes and base_name not in seen:
                    names |= defined(base_name, seen | {name})
        return names

    found: set[str] = set()
    for path, tree in trees.items():
        for module in _imports(tree):
            if module.partition(".")[0] != "provisioner_lab" and any(_private(p) for p in module.split(".")):
                found.add(f"{path} imports {module}")
        for receiver, attr, line, cls in _accesses(tree, None):
            receiver_name = receiver.id if isinstance(receiver, ast.Name) else None
            if receiver_name not in _RECEIVERS or cls is None:
                found.add(f"{path}:{line} {ast.unparse(receiver)}.{attr}")
            elif attr not in defined(cls):
                found.add(f"{path}:{line} {receiver_name}.{attr} (not defined by lab class {cls})")
    return found


def _assigned_privates(cls: type) -> set[str]:
    """The private instance attributes a (non-lab) class's source assigns to ``self``."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # builtins and C types: no source, and no Python-level instance attributes
        return set()
    node = ast.parse(source).body[0]
    return {name for name in own_names(node) if _private(name)} if isinstance(node, ast.ClassDef) else set()


def shadowed(cls: type, names: set[str]) -> set[str]:
    """Rule 4: the private ``names`` of lab class ``cls`` that a base class from outside the lab already has."""
    found = set()
    for base in cls.__mro__[1:]:
        if base is object or base.__module__.startswith("provisioner_lab"):
            continue
        for name in names:
            if _private(name) and (name in vars(base) or name in _assigned_privates(base)):
                found.add(f"{cls.__module__}.{cls.__qualname__}.{name} shadows {base.__module__}.{base.__qualname__}")
    return found


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


def test_the_lab_uses_no_private_name_of_a_dependency() -> None:
    assert scan(_lab_sources()) == set()


def test_no_lab_class_overrides_a_private_name_of_a_base_outside_the_lab() -> None:
    found: set[str] = set()
    for path, text in _lab_sources().items():
        module = importlib.import_module("provisioner_lab." + path.removesuffix(".py").replace("/", ".")
                                         .removesuffix(".__init__"))
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef):
                found |= shadowed(getattr(module, node.name), own_names(node))
    assert found == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from psrpcore._payload import create_message", "m.py imports psrpcore._payload"),
        ("import psrpcore._payload", "m.py imports psrpcore._payload"),
        ("from spnego import _ntlm", "m.py imports spnego._ntlm"),
        ("def f(event):\n    return event._ps_object", "m.py:2 event._ps_object"),
        ("import sys\nsys._getframe()", "m.py:2 sys._getframe"),
        ("def f(pool):\n    setattr(pool, '_max_runspaces', 1)", "m.py:2 pool._max_runspaces"),
        ("class A:\n    def f(self):\n        return super()._process_message(1)", "m.py:3 super()._process_message"),
        ("class A:\n    def __init__(self):\n        self._lock = 1\ndef f(a):\n    return a._lock",
         "m.py:5 a._lock"),
        ("import psrpcore\nclass P(psrpcore.ServerRunspacePool):\n    def f(self):\n        self._send_buffer.clear()",
         "m.py:4 self._send_buffer (not defined by lab class P)"),
        ("class P(Base):\n    def f(self):\n        return getattr(self, '_cipher')",
         "m.py:3 self._cipher (not defined by lab class P)"),
    ],
)
def test_the_scan_catches_each_kind_of_private_use(source: str, expected: str) -> None:
    assert expected in scan({"m.py": source})


def test_the_scan_allows_a_lab_class_its_own_and_its_lab_bases_privates() -> None:
    source = """
class A:
    _table: dict = {}
    def __init__(self):
        self._x = 1
    def _helper(self):
        return self._x, self._table
class B(A):
    def g(self):
        return self._helper(), self._x, self.__class__, self.__dict__
    @classmethod
    def h(cls):
        return cls._table
"""
    assert scan({"m.py": source}) == set()


def test_shadowing_a_dependency_base_private_is_caught() -> None:
    import psrpcore

    class Pool(psrpcore.ServerRunspacePool):
        pass

    assert shadowed(Pool, {"_process_SetMaxRunspaces", "_cipher", "_send_buffer", "_lab_own"}) == {
        f"{Pool.__module__}.{Pool.__qualname__}.{name} shadows psrpcore._server.ServerRunspacePool"
        for name in ("_process_SetMaxRunspaces",)
    } | {
        f"{Pool.__module__}.{Pool.__qualname__}.{name} shadows psrpcore._base.RunspacePool"
        for name in ("_cipher", "_send_buffer")
    }
