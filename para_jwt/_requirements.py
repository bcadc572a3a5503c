"""What a route asks of a verified user beyond a valid token: ``Requirements``.

Shared by every adapter's ``para_required`` and its kin: checked once, when the
route is declared, and enforced on each request's claims (403 when unmet).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self, TypeVar

from ._http import Gate, Refused
from .claims import AuthType, ParaClaims, WalletType
from .errors import ConfigurationError

__all__ = ["Requirements"]

_E = TypeVar("_E", AuthType, WalletType)


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a route asks of a verified user, beyond a valid token.

    Only Para-custodied wallets (``claims.wallets``) count: connected wallets are
    not proof of custody.
    """

    auth_types: frozenset[AuthType] | None = None
    wallet_types: frozenset[WalletType] | None = None
    require_wallet: bool = False

    @classmethod
    def build(cls, auth_types: object, wallet_types: object, require_wallet: object) -> Self:
        """Check the options of ``para_required`` and their kin.

        Args:
            auth_types: Accept only users who signed in this way, e.g.
                ``{"email", "phone"}``; ``None``: any way.
            wallet_types: Accept only users with a Para-custodied wallet of one of
                these chains, e.g. ``{"EVM"}``; ``None``: any chain, or none.
            require_wallet: Accept only users with at least one Para-custodied wallet.

        Returns:
            The requirements.

        Raises:
            ConfigurationError: For a lone string, an empty collection, or a value
                para_jwt does not know (a typo would otherwise refuse everyone).
        """
        if type(require_wallet) is not bool:
            raise ConfigurationError(
                f"require_wallet must be True or False, not {type(require_wallet).__name__}"
            )
        return cls(
            _members("auth_types", auth_types, AuthType),
            _members("wallet_types", wallet_types, WalletType),
            require_wallet,
        )

    def enforce(self, gate: Gate, claims: ParaClaims) -> None:
        """Raise ``Refused`` (403 ``insufficient_scope``) if ``claims`` fail one."""
        if self.auth_types is not None and claims.auth_type not in self.auth_types:
            names = " or ".join(sorted(self.auth_types))
            self._refuse(gate, "auth_type", f"This route requires signing in with {names}")
        if self.wallet_types is not None and not any(
            wallet.type in self.wallet_types for wallet in claims.wallets
        ):
            names = " or ".join(sorted(self.wallet_types))
            self._refuse(gate, "wallet_type", f"This route requires a Para {names} wallet")
        if self.require_wallet and not claims.wallets:
            self._refuse(gate, "no_wallet", "This route requires a Para wallet")

    @staticmethod
    def _refuse(gate: Gate, reason: str, description: str) -> None:
        raise Refused(gate.challenge(403, "insufficient_scope", description, reason))


def _members(option: str, values: object, enum: type[_E]) -> frozenset[_E] | None:
    if values is None:
        return None
    known = ", ".join(member.value for member in enum)
    # A lone string is iterable too: {"e", "m", "a", "i", "l"} would lock everyone out.
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ConfigurationError(
            f"{option} must be a collection of strings such as {{{next(iter(enum)).value!r}}}, "
            f"not {type(values).__name__}"
        )
    members: set[_E] = set()
    for value in values:
        member = enum(value) if isinstance(value, str) else None
        # The enums keep values they do not know (Para adds some); a route
        # requirement with one is far more likely a typo that would refuse everyone.
        if member is None or not member.is_known:
            raise ConfigurationError(f"{option}: {value!r} is not one of {known}")
        members.add(member)
    if not members:
        raise ConfigurationError(f"{option} is empty, so nobody could pass: leave it out instead")
    return frozenset(members)
