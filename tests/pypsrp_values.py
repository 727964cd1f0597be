"""A comparable form of what a pypsrp Serializer returns, for tests that compare two readers."""

from __future__ import annotations

from typing import Any

from pypsrp.complex_objects import ComplexObject, GenericComplexObject


def plain(value: Any) -> Any:
    """pypsrp objects by their type names, text and attributes; lists and dicts entry by entry; values by type."""
    if isinstance(value, list):
        return ["list", [plain(item) for item in value]]
    if isinstance(value, dict):
        return ["dict", sorted(((repr(plain(k)), plain(v)) for k, v in value.items()), key=lambda kv: kv[0])]
    if isinstance(value, GenericComplexObject):
        return ["generic", list(value.types), plain(value.to_string), plain(value.adapted_properties),
                plain(value.extended_properties), plain(value.property_sets)]
    if isinstance(value, ComplexObject):
        names = [name for name, _ in (*value._property_sets, *value._adapted_properties, *value._extended_properties)]
        return [type(value).__name__, list(value._types), value._to_string,
                {name: plain(getattr(value, name, None)) for name in names}]
    return [type(value).__name__, value]
