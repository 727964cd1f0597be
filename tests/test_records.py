"""Reading pypsrp objects: the plausible remoting shapes of ACE properties and error records all decide alike."""

from __future__ import annotations

from typing import Any

import pytest
from pypsrp.complex_objects import GenericComplexObject

from provisioner.transport import records


def _obj(types: list[str], props: dict[str, Any], to_string: str | None = None) -> GenericComplexObject:
    obj = GenericComplexObject()
    obj.types = types
    obj.adapted_properties = props
    obj.to_string = to_string
    return obj


ACE = ["Deserialized.Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
       "Deserialized.System.Object"]


def _rights(text: str) -> list[GenericComplexObject]:
    return [_obj(["Deserialized.Microsoft.Exchange.Management.RecipientTasks.MailboxRights"], {}, text)]


@pytest.mark.parametrize("deny", [False, "False", _obj(["System.Management.Automation.SwitchParameter"],
                                                         {"IsPresent": False}, "False")])
def test_allow_entry_in_every_shape(deny: Any) -> None:
    entry = records.permission_entry(_obj(ACE, {"AccessRights": _rights("FullAccess, ReadPermission"), "Deny": deny,
                                               "IsInherited": False}))
    assert entry is not None
    assert entry.grants_full_access and not entry.denies_full_access
    assert entry.access_rights == frozenset({"fullaccess", "readpermission"})


@pytest.mark.parametrize("deny", [True, "True", _obj([], {"IsPresent": True}, "True")])
def test_deny_entry_in_every_shape(deny: Any) -> None:
    entry = records.permission_entry(_obj(ACE, {"AccessRights": "FullAccess", "Deny": deny, "IsInherited": "True"}))
    assert entry is not None and entry.denies_full_access and entry.inherited


def test_non_ace_objects_and_missing_fields_are_not_entries() -> None:
    assert records.permission_entry(_obj(["Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox"],
                                         {"AccessRights": "FullAccess", "Deny": False, "IsInherited": False})) is None
    assert records.permission_entry(_obj(ACE, {"AccessRights": "FullAccess", "IsInherited": False})) is None
    assert records.permission_entry(_obj(ACE, {"AccessRights": "FullAccess", "Deny": "maybe",
                                               "IsInherited": False})) is None


def test_rights_split_on_commas_whatever_the_container() -> None:
    expected = {"fullaccess", "deleteitem", "readpermission"}
    assert records.rights(["FullAccess, DeleteItem", "ReadPermission"]) == expected
    assert records.rights("SendAs") == {"sendas"}
    assert records.rights(None) == frozenset()


class _Record:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def test_error_info_uses_structure() -> None:
    exception = _obj(["System.Exception"], {"Message": "The operation couldn't be performed because object\n'x' ..."})
    info = records.error_info(_Record(exception=exception, category=13, reason="ManagementObjectNotFoundException",
                                      fq_error="[Server=EX01],ABC,Microsoft.Exchange...GetMailboxPermission",
                                      target_object="x"))
    assert info.category == "ObjectNotFound"
    assert info.not_found
    assert info.message == "The operation couldn't be performed because object 'x' ..."
    assert info.target == "x"


def test_error_info_without_exception_falls_back() -> None:
    info = records.error_info(_Record(exception=None, category=99, reason=None, fq_error=None, message="boom"))
    assert info.message == "boom" and info.category == "99" and info.reason == "" and not info.not_found


def test_categories_are_powershells_enum_order() -> None:
    assert records.ERROR_CATEGORIES[5] == "InvalidArgument"
    assert records.ERROR_CATEGORIES[13] == "ObjectNotFound"
    assert records.ERROR_CATEGORIES[18] == "PermissionDenied"
    assert records.ERROR_CATEGORIES[31] == "NotEnabled"
