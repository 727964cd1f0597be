"""Select-Object's names are worked out once per input shape (``core._plan``, cached): the bags it makes are those
PowerShell's rules give, for any names, wildcards, exclusions and inputs, whatever the cache already holds."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from provisioner_lab.api import LabObject
from provisioner_lab.exchange.core import selected, selector

NAMES = ["Identity", "identity", "IDENTITY", "User", "user", "AccessRights", "Deny", "IsInherited", "Name",
         "NameExtra", "x", "X", "a.b", "a?b", "[a]"]
PATTERNS = [*NAMES, "*", "Name*", "name*", "*ty", "?ser", "I*d*", "Absent", "absent*", "a.b", "[a]"]


def oracle(item: Any, wanted: list[str], excluded: list[str]) -> dict[str, Any]:
    """Select-Object's rules written out plainly: a plain name takes the input's first property of that name in
    any case (its spelling) or stays as given; a wildcard every matching property in the input's order; a name
    selected twice (in any case) once; excluded names and wildcards dropped; a value from the last property of
    that name in any case, $null when none."""
    props = item.properties if isinstance(item, LabObject) else item

    def matches(pattern: str, name: str) -> bool:
        if not any(char in pattern for char in "*?["):
            return pattern.lower() == name.lower()
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        return re.fullmatch(regex, name, re.IGNORECASE) is not None

    names: list[str] = []
    for entry in wanted:
        if any(char in entry for char in "*?["):
            found = [key for key in props if matches(entry, key)]
        else:
            found = [next((key for key in props if key.lower() == entry.lower()), entry)]
        names += [name for name in found if all(name.lower() != kept.lower() for kept in names)]
    names = [name for name in names if not any(matches(pattern, name) for pattern in excluded)]
    values = {}
    for name in names:
        same = [key for key in props if key.lower() == name.lower()]
        values[name] = props[same[-1]] if same else None
    return values


SHAPES = st.lists(st.sampled_from(NAMES), max_size=8, unique=True)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))


@st.composite
def inputs(draw: st.DrawFn) -> Any:
    keys = draw(SHAPES)
    props = {key: draw(VALUES) for key in keys}
    if draw(st.booleans()):
        return LabObject(("Some.Type", "System.Object"), props, "text")
    return props


@settings(max_examples=300, deadline=None)
@given(st.lists(inputs(), min_size=1, max_size=6), st.lists(st.sampled_from(PATTERNS), max_size=5),
       st.lists(st.sampled_from(PATTERNS), max_size=2))
def test_bags_follow_the_rules_for_every_input(items: list[Any], wanted: list[str], excluded: list[str]) -> None:
    select = selector(wanted, excluded)
    for item in items * 2:  # the second time round, every shape is in the cache
        bag = select(item)
        expected = oracle(item, wanted, excluded)
        assert list(bag.properties) == list(expected) and bag.properties == expected
        assert all(bag.properties[name] is expected[name] for name in expected)  # the input's own values
        assert bag.note_properties and bag.type_names[1:] == ("System.Management.Automation.PSCustomObject",
                                                              "System.Object")


def test_inputs_of_one_shape_keep_their_own_values() -> None:
    """The cache holds names, never values: objects of one shape, and one object after its values change."""
    first = LabObject(("T",), {"Identity": "a", "User": "u1", "Deny": False}, "a")
    second = LabObject(("T",), {"Identity": "b", "User": "u2", "Deny": True}, "b")
    select = selector(["identity", "Deny"])
    assert select(first).properties == {"Identity": "a", "Deny": False}
    assert select(second).properties == {"Identity": "b", "Deny": True}
    assert select(second).to_string == "@{Identity=b; Deny=True}"
    first.properties["Deny"] = True
    first.properties["IDENTITY"] = "later"  # a new shape: its last spelling's value, the first spelling's name
    assert select(first).properties == {"Identity": "later", "Deny": True}
    del first.properties["Identity"]
    assert select(first).properties == {"IDENTITY": "later", "Deny": True}


def test_names_that_are_not_plain_strings_take_the_uncached_path() -> None:
    class Name(str):
        pass

    item = {"Identity": "a", 1: "one"}  # a hashtable with a key that is no string
    assert selected(item, [Name("identity"), "1"]).properties == {"Identity": "a", "1": "one"}
    try:
        selected(item, [{"Name": "calculated"}])
    except TypeError:
        pass
    else:
        raise AssertionError("a calculated property must raise TypeError (NotImplemented to the caller)")
