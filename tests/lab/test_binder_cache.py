"""The Binder's per-cmdlet caches (parameter names, mandatory-somewhere) answer as the uncached lookups do."""

from __future__ import annotations

import dataclasses
import random

from provisioner_lab.api import Argument, LabObject
from provisioner_lab.exchange.binding import Binder, CmdletSpec, ParamSpec, PreparedCommand, load_specs
from provisioner_lab.exchange.errors import CmdletError


def _answer(binder: Binder, spec: CmdletSpec, given: str) -> object:
    """The parameter ``given`` resolves to, or the error record it raised (as comparable data)."""
    try:
        return binder._resolve_name(spec, given)
    except CmdletError as exc:
        return ("error", exc.record, exc.terminating)


def _names(spec: CmdletSpec, rnd: random.Random) -> list[str]:
    names: list[str] = ["", "x", "NoSuchParameter", "-", "Identityx"]
    for param in spec.params.values():
        for name in (param.name, *param.aliases):
            for end in range(1, len(name) + 1):
                prefix = name[:end]
                names += [prefix, prefix.upper(), "".join(c.upper() if rnd.random() < 0.5 else c for c in prefix)]
    return names


def test_cached_names_and_mandatory_flags_match_uncached() -> None:
    specs = load_specs()
    binder = Binder(specs)
    rnd = random.Random(7)
    for spec in specs.values():
        names = _names(spec, rnd)
        for _round in range(2):  # the second round answers from the cache
            for given in names:
                # Binder({}) does not hold the spec, so it never caches: the uncached answer
                assert _answer(binder, spec, given) == _answer(Binder({}), spec, given), (spec.name, given)
            for name in spec.params:
                expected = any(name in pset.mandatory for pset in spec.sets)
                assert binder._is_mandatory_somewhere(spec, name) == expected
                assert Binder({})._is_mandatory_somewhere(spec, name) == expected


def test_cache_not_used_for_another_spec_of_the_same_name() -> None:
    specs = load_specs()
    binder = Binder(specs)
    spec = specs["Get-MailboxPermission"]
    assert binder._resolve_name(spec, "user").name == "User"
    assert binder._is_mandatory_somewhere(spec, "Identity") is True
    # a changed copy under the same cmdlet name: answers come from the copy, not from the cache
    params = {name: p for name, p in spec.params.items() if name != "User"}
    params["Username"] = ParamSpec("Username", "String")
    other = dataclasses.replace(spec, params=params, sets=tuple(dataclasses.replace(s, mandatory=frozenset())
                                                                for s in spec.sets))
    assert binder._resolve_name(other, "user").name == "Username"
    assert binder._is_mandatory_somewhere(other, "Identity") is False
    assert binder._resolve_name(spec, "user").name == "User"
    assert binder._is_mandatory_somewhere(spec, "Identity") is True


def _bound(binder: Binder, prepared: PreparedCommand, record: object) -> object:
    try:
        bound = binder.bind_record(prepared, record)
    except CmdletError as exc:
        return ("error", exc.record, exc.terminating)
    return (bound.cmdlet, bound.parameter_set, bound.values, bound.common)


def test_records_bound_through_one_prepared_command_bind_as_through_a_fresh_one() -> None:
    """bind_record keeps, per prepared command, the parameters input may bind and the set chosen per bound names:
    a run of records of every shape (strings, ACE-like objects, bags with and without the names, nothing that
    binds) binds as each record would alone."""
    binder = Binder(load_specs())
    ace = LabObject(("Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject", "System.Object"),
                    {"Identity": "alice", "User": "CONTOSO\\svc", "AccessRights": ["FullAccess"]}, "alice")
    records: list[object] = ["alice", "", {"Identity": "bob"}, {"identity": "carol", "User": "svc"}, {"Other": 1},
                             ace, 5, None, {"User": "svc"}, LabObject(("Some.Type",), {}, "x")]
    commands = [
        ("Get-Mailbox", []),
        ("Get-MailboxPermission", [Argument("User", "svc")]),
        ("Get-MailboxPermission", []),
        ("Add-MailboxPermission", [Argument("User", "svc"), Argument("AccessRights", ["FullAccess"])]),
        ("Add-MailboxPermission", [Argument("AccessRights", ["FullAccess"])]),
        ("Remove-MailboxPermission", [Argument("User", "svc"), Argument("AccessRights", ["FullAccess"])]),
    ]
    for cmdlet, arguments in commands:
        shared = binder.prepare(cmdlet, arguments)
        for record in records * 2:  # the second time round, from the caches
            alone = _bound(binder, binder.prepare(cmdlet, arguments), record)
            assert _bound(binder, shared, record) == alone, (cmdlet, record)
