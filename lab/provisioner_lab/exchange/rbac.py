"""RBAC as a session sees it: the cmdlets and parameters an account's role assignments leave out.

On Exchange only the cmdlets and parameters granted by RBAC exist in a remote session [doc]: a parameter the
caller's roles do not include cannot be bound (PowerShell's "A parameter cannot be found that matches parameter
name ..."), a cmdlet none of them includes is not recognized (CommandNotFoundException), and command metadata
lists neither. The lab takes the trims per account instead of modelling roles, scopes and assignments.

Option format (``EngineOptions.rbac``, ``running_lab(rbac=...)``)::

    {"lab-admin": {"Add-MailboxPermission": {"AutoMapping", "Deny"},   # parameters removed
                   "Remove-MailboxPermission": None}}                   # None: the cmdlet removed entirely

Keys are the authenticated user names as the server reports them (``Shell.user``), matched case-insensitively;
a ``DOMAIN\\name`` key also matches ``name`` and the other way round. A :class:`RoleTrim` may be given instead of
the dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RbacEntry = Mapping[str, Iterable[str] | None]
RbacOption = Mapping[str, "RoleTrim | RbacEntry"]


@dataclass(frozen=True)
class RoleTrim:
    """What RBAC leaves out of one account's session: ``(cmdlet, parameter)`` pairs and whole cmdlets."""

    parameters: frozenset[tuple[str, str]] = frozenset()
    cmdlets: frozenset[str] = frozenset()

    @classmethod
    def from_entry(cls, entry: RbacEntry) -> RoleTrim:
        parameters: set[tuple[str, str]] = set()
        cmdlets: set[str] = set()
        for cmdlet, removed in entry.items():
            if removed is None:
                cmdlets.add(cmdlet)
            else:
                names = [removed] if isinstance(removed, str) else list(removed)
                parameters.update((cmdlet, name) for name in names)
        return cls(frozenset(parameters), frozenset(cmdlets))


def _short(user: str) -> str:
    return user.rsplit("\\", 1)[-1].lower()


class Rbac:
    """The trims of every configured account; :meth:`trim_for` the one that applies to a caller."""

    def __init__(self, option: RbacOption | None = None) -> None:
        self._exact: dict[str, RoleTrim] = {}
        self._short: dict[str, RoleTrim] = {}
        for user, entry in (option or {}).items():
            trim = entry if isinstance(entry, RoleTrim) else RoleTrim.from_entry(entry)
            self._exact[user.lower()] = trim
            self._short.setdefault(_short(user), trim)

    def __bool__(self) -> bool:
        return bool(self._exact)

    def trim_for(self, user: str | None) -> RoleTrim | None:
        """The trim for the authenticated ``user``; None: the account has every cmdlet and parameter."""
        if not user or not self._exact:
            return None
        return self._exact.get(user.lower()) or self._short.get(_short(user))


__all__ = ["Rbac", "RbacEntry", "RbacOption", "RoleTrim"]
