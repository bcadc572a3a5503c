"""Typed, frozen views of what a verified Para token says about its user.

Para's schema grows (new auth types, OAuth providers, chains), so the enums here
are *open*: an unknown value becomes a member-like object of the enum that
compares equal to its string, instead of failing the token. What *is* checked is
the shape: a field that is present must have the documented type, because a
claim of the wrong type is a sign of a token from something other than Para.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self, TypeVar, cast

from .errors import InvalidClaimsError

__all__ = ["AuthType", "OAuthMethod", "ParaClaims", "Payload", "Wallet", "WalletType"]


class _OpenStrEnum(StrEnum):
    """A StrEnum that keeps unknown values instead of raising ``ValueError``.

    Unknown values are built on demand and never cached, so a stream of tokens
    with invented values cannot grow memory.
    """

    @classmethod
    def _canonical(cls, value: str) -> str:
        return value

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        known = cls._value2member_map_.get(cls._canonical(value))
        if known is not None:
            return cast(Self, known)
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """False for a value this version of para_jwt has not heard of."""
        return type(self)._value2member_map_.get(self._value_) is self


class AuthType(_OpenStrEnum):
    """How the user signed in (``data.authType``); values as Para sends them."""

    EMAIL = "email"
    PHONE = "phone"
    PHONE_LEGACY = "phoneLegacy"
    FARCASTER = "farcaster"
    TELEGRAM = "telegram"
    USER_ID = "userId"
    EXTERNAL_WALLET = "externalWallet"
    DISCORD = "discord"
    X = "x"
    CUSTOM_ID = "customId"
    GUEST_ID = "guestId"


class OAuthMethod(_OpenStrEnum):
    """The OAuth provider (``data.oAuthMethod``).

    Para's docs show lowercase values and its SDK uppercase ones, so lookups
    ignore case; members are uppercase, as in the SDK.
    """

    GOOGLE = "GOOGLE"
    TWITTER = "TWITTER"
    X = "X"
    APPLE = "APPLE"
    DISCORD = "DISCORD"
    FACEBOOK = "FACEBOOK"
    FARCASTER = "FARCASTER"
    TELEGRAM = "TELEGRAM"
    CUSTOM_OIDC = "CUSTOM_OIDC"
    CUSTOM_OAUTH = "CUSTOM_OAUTH"

    @classmethod
    def _canonical(cls, value: str) -> str:
        return value.upper()


class WalletType(_OpenStrEnum):
    """A wallet's chain family (``type``); lookups ignore case."""

    EVM = "EVM"
    SOLANA = "SOLANA"
    COSMOS = "COSMOS"
    STELLAR = "STELLAR"
    SUI = "SUI"

    @classmethod
    def _canonical(cls, value: str) -> str:
        return value.upper()


@dataclass(frozen=True)
class Wallet:
    """One wallet from ``data.wallets`` (Para-custodied) or ``data.connectedWallets``."""

    id: str
    type: WalletType
    address: str
    #: ``0x04…`` for EVM; Para sends ``""`` for chains where it has none (Solana).
    public_key: str | None


_Enum = TypeVar("_Enum", bound="_OpenStrEnum")

#: Each open enum's members by value, as Para spells them: a dict lookup answers
#: the values every token carries, where calling the enum goes through
#: ``EnumType.__call__`` (over four times the work, bench_parts.py).
_MEMBERS: dict[type[_OpenStrEnum], dict[str, Any]] = {
    enum: {member.value: member for member in enum} for enum in (AuthType, OAuthMethod, WalletType)
}


def _member(enum: type[_Enum], value: str) -> _Enum:
    """``enum(value)``: a member as Para spells it from ``_MEMBERS``, anything else from ``enum``.

    Other spellings (another case) and unknown values go through the enum's own
    lookup, so the result is always what ``enum(value)`` returns
    (test_claims.py checks known, unknown and odd-case values).
    """
    member: _Enum | None = _MEMBERS[enum].get(value)
    return enum(value) if member is None else member


_Frozen = TypeVar("_Frozen")


def _frozen(cls: type[_Frozen], fields: dict[str, Any]) -> _Frozen:
    """An instance of the frozen dataclass ``cls`` holding ``fields``, every one of them.

    What ``cls(**fields)`` returns, built without the generated ``__init__``:
    a frozen dataclass's ``__init__`` sets each field with ``object.__setattr__``,
    a slow call that made up most of building the claims (bench_parts.py). The
    instance's ``__dict__`` takes all fields in one C call instead. ``fields``
    must name every field and nothing else, and the class must have no
    ``__post_init__``: test_claims.py checks both against ``cls(**fields)``.
    A subclass (an application's own claims) may add either, so it gets its
    constructor.

    Args:
        cls: ``ParaClaims`` or ``Wallet`` (any other class is called).
        fields: Every field's value, by field name.

    Returns:
        The instance, equal to ``cls(**fields)``.
    """
    if cls is not ParaClaims and cls is not Wallet:
        return cls(**fields)
    instance: _Frozen = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance


def _wallets(data: Mapping[str, Any], name: str) -> tuple[Wallet, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidClaimsError(f"data.{name} must be a list")
    return tuple([_wallet(item, name) for item in value])


def _wallet(value: Any, name: str) -> Wallet:
    if not isinstance(value, dict):
        raise InvalidClaimsError(f"data.{name} entries must be objects")
    wallet_id, wallet_type, address = value.get("id"), value.get("type"), value.get("address")
    public_key = value.get("publicKey")
    if not (
        type(wallet_id) is str
        and type(wallet_type) is str
        and type(address) is str
        and (public_key is None or type(public_key) is str)
    ):
        raise InvalidClaimsError(
            f"data.{name} entries need string 'id', 'type' and 'address' "
            "and an optional string 'publicKey'"
        )
    return _frozen(
        Wallet,
        {
            "id": wallet_id,
            "type": _member(WalletType, wallet_type),
            "address": address,
            "public_key": public_key,
        },
    )


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or type(value) is str:
        return value
    raise InvalidClaimsError(f"data.{name} must be a string")


def _optional_id(data: Mapping[str, Any], name: str) -> str | None:
    # Telegram user IDs are numbers; Para may send them as either type.
    value = data.get(name)
    if type(value) is int:
        return str(value)
    return _optional_str(data, name)


def _optional_enum(data: Mapping[str, Any], name: str, enum: type[_Enum]) -> _Enum | None:
    value = _optional_str(data, name)
    return None if value is None else _member(enum, value)


def _timestamp(payload: Mapping[str, Any], name: str) -> datetime | None:
    # The verifier checked exp, nbf and iat before the claims are built.
    value = payload.get(name)
    return None if value is None else datetime.fromtimestamp(value, UTC)


class Payload(Mapping[str, Any]):
    """A read-only view of a verified token's payload.

    Nested objects come out as ``Payload`` too and arrays as tuples, so nothing
    reached through it can change what the verified-token cache hands the next
    request presenting the same token. ``copy()`` returns a plain ``dict`` (a
    deep copy) to change or serialize; ``copy.deepcopy`` and ``pickle`` work.
    """

    __slots__ = ("_members",)

    def __init__(self, members: Mapping[str, Any]) -> None:
        self._members = dict(members)

    def __getitem__(self, name: str) -> Any:
        return _read_only(self._members[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return f"Payload({self._members!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Payload):
            return self._members == other._members
        return self._members == other if isinstance(other, dict) else NotImplemented

    def copy(self) -> dict[str, Any]:
        """A deep copy of the payload as a plain, mutable ``dict``."""
        return copy.deepcopy(self._members)

    def __deepcopy__(self, memo: dict[int, Any]) -> Payload:
        return Payload(copy.deepcopy(self._members, memo))

    def __reduce__(self) -> tuple[type[Payload], tuple[dict[str, Any]]]:
        return Payload, (self._members,)


def _read_only(value: Any) -> Any:
    if isinstance(value, dict):
        return Payload(value)
    if isinstance(value, list):
        return tuple(_read_only(item) for item in value)
    return value


@dataclass(frozen=True)
class ParaClaims:
    """The verified claims of one Para JWT.

    ``wallets`` are Para-custodied embedded wallets; ``connected_wallets`` are
    external wallets the user connected in this session: do not treat those as
    proof of custody. There is no "email verified" claim in Para's tokens; the
    presence of ``email`` says only how the user signed in.
    """

    user_id: str
    wallets: tuple[Wallet, ...]
    connected_wallets: tuple[Wallet, ...]
    auth_type: AuthType | None
    identifier: str | None
    email: str | None
    phone: str | None
    oauth_method: OAuthMethod | None
    telegram_user_id: str | None
    farcaster_username: str | None
    external_wallet_address: str | None
    subject: str | None
    #: The audience that matched: this application's API key ID.
    audience: str
    issued_at: datetime | None
    expires_at: datetime
    key_id: str
    #: The whole verified payload, read-only (see ``Payload``). Left out of
    #: ``hash(claims)``, which hashes every other field.
    payload: Payload = field(hash=False)

    def wallets_of(self, wallet_type: WalletType | str) -> tuple[Wallet, ...]:
        """The user's Para wallets of one chain family, in token order.

        Args:
            wallet_type: The chain family, e.g. ``"EVM"`` (any case).
        """
        wanted = WalletType(wallet_type)
        return tuple(w for w in self.wallets if w.type == wanted)

    def wallet(self, wallet_type: WalletType | str) -> Wallet | None:
        """The user's first Para wallet of one chain family, or ``None``.

        Args:
            wallet_type: The chain family, e.g. ``"SOLANA"`` (any case).
        """
        wanted = WalletType(wallet_type)
        return next((w for w in self.wallets if w.type == wanted), None)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, audience: str, key_id: str) -> ParaClaims:
        """Build the typed claims from a verified payload.

        Args:
            payload: A payload whose signature and registered claims (``aud``,
                ``exp``, ``nbf``, ``iat``) were already checked.
            audience: The API key ID that matched ``aud``.
            key_id: The ``kid`` of the key that verified the signature.

        Returns:
            The claims; ``payload`` is kept as a read-only ``Payload``.

        Raises:
            InvalidClaimsError: ``data`` has the wrong shape (the first broken
                field in the documented order is named), or ``sub`` names
                another user than ``data.userId``.
        """
        data = payload.get("data")
        if not isinstance(data, dict):
            raise InvalidClaimsError("the 'data' claim must be an object")
        user_id = data.get("userId")
        if type(user_id) is not str or not user_id:
            raise InvalidClaimsError("data.userId must be a non-empty string")
        subject = payload.get("sub")
        if subject is not None and subject != user_id:
            raise InvalidClaimsError("'sub' does not match data.userId")
        # Keyword arguments are evaluated in source order: the first broken
        # field, in the documented order, is the one named.
        return _frozen(
            cls,
            {
                "auth_type": _optional_enum(data, "authType", AuthType),
                "oauth_method": _optional_enum(data, "oAuthMethod", OAuthMethod),
                "wallets": _wallets(data, "wallets"),
                "connected_wallets": _wallets(data, "connectedWallets"),
                "identifier": _optional_str(data, "identifier"),
                "email": _optional_str(data, "email"),
                "phone": _optional_str(data, "phone"),
                "telegram_user_id": _optional_id(data, "telegramUserId"),
                "farcaster_username": _optional_str(data, "farcasterUsername"),
                "external_wallet_address": _optional_str(data, "externalWalletAddress"),
                "user_id": user_id,
                "subject": subject,
                "audience": audience,
                "issued_at": _timestamp(payload, "iat"),
                "expires_at": datetime.fromtimestamp(payload["exp"], UTC),
                "key_id": key_id,
                "payload": Payload(payload),
            },
        )
