"""``ParaUser``: who DRF's ``request.user`` is by default, straight from the claims."""

from __future__ import annotations

from typing import Any

from ..claims import ParaClaims

__all__ = ["ParaUser"]


class ParaUser:
    """A signed-in Para user, without a database row: nothing is saved, nothing is queried.

    Enough of Django's user interface for permission classes and templates:
    ``is_authenticated`` is true, ``id`` / ``pk`` are Para's user ID, and it holds no
    Django permissions. To have your own user model instead, point
    ``PARA_JWT["USER"]`` at a function taking ``ParaClaims``.

    Args:
        claims: The verified claims of the request's token.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, claims: ParaClaims) -> None:
        #: The verified claims this user was made from.
        self.claims = claims
        #: Para's user ID (``claims.user_id``).
        self.id = self.pk = claims.user_id

    def get_username(self) -> str:
        """Para's user ID: the one name every Para user has."""
        return self.id

    def has_perm(self, perm: str, obj: object = None) -> bool:
        """No Django permission: a ``ParaUser`` has no database row to hold any."""
        return False

    def has_perms(self, perm_list: Any, obj: object = None) -> bool:
        """No Django permission, as ``has_perm``."""
        return False

    def has_module_perms(self, app_label: str) -> bool:
        """No Django permission, as ``has_perm``."""
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParaUser) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"ParaUser(id={self.id!r})"
