"""Typed, frozen views of what a verified Para token says about its user.

Para's schema grows (new auth types, OAuth providers, chains), so the enums here
are *open*: an unknown value becomes a member-like object of the enum that
compares equal to its string, instead of failing the token. What *is* checked is
the shape: a field that is present must have the documented type, because a
claim of the wrong type is a sign of a token from something other than Para.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from operator import itemgetter
from typing import Any, NoReturn, Self

from .errors import InvalidClaimsError

__all__ = ["AuthType", "OAuthMethod", "ParaClaims", "Wallet", "WalletType"]


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
            return known  # type: ignore[return-value]
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


@dataclass(frozen=True, slots=True)
class Wallet:
    """One wallet from ``data.wallets`` (Para-custodied) or ``data.connectedWallets``."""

    id: str
    type: WalletType
    address: str
    #: ``0x04…`` for EVM; Para sends ``""`` for chains where it has none (Solana).
    public_key: str | None


# --- building frozen claims fast ---------------------------------------------------------
#
# A frozen dataclass's __init__ stores each field through object.__setattr__:
# ~1.5 µs for ParaClaims' 17 fields (benchmarks/bench_parts.py), and more per
# Wallet. A draft is a plain class with the same __slots__, hence the same
# memory layout: it is filled with ordinary attribute stores (a fraction of that), then
# re-classed in place (CPython allows __class__ assignment between layout-compatible
# classes). The result is an ordinary instance of the frozen class: equality, repr,
# hashing and FrozenInstanceError behave exactly as if __init__ had built it.


def _draft_class(cls: type) -> Any:
    return type(f"_{cls.__name__}Draft", (), {"__slots__": cls.__dict__["__slots__"]})


_WalletDraft = _draft_class(Wallet)
# The enums' own lookup table, read directly: calling the enum runs Python-level
# Enum machinery, and _missing_ too when the value needs case folding.
_WALLET_TYPES: Mapping[str, WalletType] = WalletType._value2member_map_  # type: ignore[assignment]
_AUTH_TYPES: Mapping[str, AuthType] = AuthType._value2member_map_  # type: ignore[assignment]
_OAUTH_METHODS: Mapping[str, OAuthMethod] = OAuthMethod._value2member_map_  # type: ignore[assignment]
# Para sends all four members: one C call reads them instead of four .get calls.
_WALLET_MEMBERS = itemgetter("id", "type", "address", "publicKey")


def _wallet(value: Any, field: str) -> Wallet:
    if not isinstance(value, dict):
        raise InvalidClaimsError(f"{field} entries must be objects")
    try:
        wallet_id, wallet_type, address, public_key = _WALLET_MEMBERS(value)
    except KeyError:  # publicKey is optional (the others are checked just below)
        get = value.get
        wallet_id, wallet_type, address, public_key = (
            get("id"),
            get("type"),
            get("address"),
            get("publicKey"),
        )
    if not (
        type(wallet_id) is str
        and type(wallet_type) is str
        and type(address) is str
        and (public_key is None or type(public_key) is str)
    ):
        raise InvalidClaimsError(
            f"{field} entries need string 'id', 'type' and 'address' "
            "and an optional string 'publicKey'"
        )
    wallet = _WalletDraft()
    wallet.id = wallet_id
    wallet.type = _WALLET_TYPES.get(wallet_type) or WalletType(wallet_type)
    wallet.address = address
    wallet.public_key = public_key
    wallet.__class__ = Wallet
    return wallet  # type: ignore[no-any-return]


def _wallet_tuple(value: Any, field: str) -> tuple[Wallet, ...]:
    if not isinstance(value, list):
        raise InvalidClaimsError(f"{field} must be a list")
    return tuple([_wallet(item, field) for item in value])


def _wallets(data: Mapping[str, Any], name: str) -> tuple[Wallet, ...]:
    value = data.get(name)
    return () if value is None else _wallet_tuple(value, f"data.{name}")


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


def _check_data(data: Mapping[str, Any]) -> NoReturn:
    """Raise for the first broken rule on ``data`` beyond ``userId``, in documented order."""
    _optional_str(data, "authType")
    _optional_str(data, "oAuthMethod")
    _wallets(data, "wallets")
    _wallets(data, "connectedWallets")
    _optional_str(data, "identifier")
    _optional_str(data, "email")
    _optional_str(data, "phone")
    _optional_id(data, "telegramUserId")
    _optional_str(data, "farcasterUsername")
    _optional_str(data, "externalWalletAddress")
    # Only reached if this and the fast check in from_payload disagree: fail closed.
    raise InvalidClaimsError("the 'data' claim is malformed")


_STR_OR_NONE = frozenset({str, type(None)})


@dataclass(frozen=True, slots=True)
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
    #: The whole verified payload, as sent. Read it, never mutate it: the verified-
    #: token cache hands the same claims to every request presenting this token.
    #: (A read-only proxy would break dataclasses.asdict and copy.deepcopy.)
    payload: Mapping[str, Any]

    def wallets_of(self, wallet_type: WalletType | str) -> tuple[Wallet, ...]:
        """The user's Para wallets of one chain family, in token order."""
        wanted = WalletType(wallet_type)
        return tuple(w for w in self.wallets if w.type == wanted)

    def wallet(self, wallet_type: WalletType | str) -> Wallet | None:
        """The user's first Para wallet of one chain family, or ``None``."""
        wanted = WalletType(wallet_type)
        return next((w for w in self.wallets if w.type == wanted), None)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, audience: str, key_id: str) -> ParaClaims:
        """Build the typed claims from a payload whose signature and registered
        claims (``aud``, ``exp``, ``nbf``, ``iat``) were already checked.

        Raises ``InvalidClaimsError`` for a ``data`` object of the wrong shape or
        a ``sub`` that names another user than ``data.userId``.
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
        get = data.get
        auth_type = get("authType")
        oauth_method = get("oAuthMethod")
        identifier = get("identifier")
        email = get("email")
        phone = get("phone")
        telegram_user_id = get("telegramUserId")
        farcaster_username = get("farcasterUsername")
        external_wallet_address = get("externalWalletAddress")
        if type(telegram_user_id) is int:
            telegram_user_id = str(telegram_user_id)
        # All string fields in one C-level pass, not a helper call per field.
        # If one is wrong, _check_data finds it and names it, checking in
        # the documented order (wallets included), as a field-by-field check would.
        if not _STR_OR_NONE.issuperset(
            map(
                type,
                (
                    auth_type,
                    oauth_method,
                    identifier,
                    email,
                    phone,
                    telegram_user_id,
                    farcaster_username,
                    external_wallet_address,
                ),
            )
        ):
            _check_data(data)
        wallets = get("wallets")
        wallets = () if wallets is None else _wallet_tuple(wallets, "data.wallets")
        connected_wallets = get("connectedWallets")
        if connected_wallets is not None:
            connected_wallets = _wallet_tuple(connected_wallets, "data.connectedWallets")
        else:
            connected_wallets = ()
        iat = payload.get("iat")
        fields = (
            user_id,
            wallets,
            connected_wallets,
            None if auth_type is None else _AUTH_TYPES.get(auth_type) or AuthType(auth_type),
            identifier,
            email,
            phone,
            None
            if oauth_method is None
            else _OAUTH_METHODS.get(oauth_method) or OAuthMethod(oauth_method),
            telegram_user_id,
            farcaster_username,
            external_wallet_address,
            subject,
            audience,
            None if iat is None else datetime.fromtimestamp(iat, UTC),
            datetime.fromtimestamp(payload["exp"], UTC),
            key_id,
            payload,
        )
        if cls is not ParaClaims:
            return cls(*fields)
        claims = _ParaClaimsDraft()
        (
            claims.user_id,
            claims.wallets,
            claims.connected_wallets,
            claims.auth_type,
            claims.identifier,
            claims.email,
            claims.phone,
            claims.oauth_method,
            claims.telegram_user_id,
            claims.farcaster_username,
            claims.external_wallet_address,
            claims.subject,
            claims.audience,
            claims.issued_at,
            claims.expires_at,
            claims.key_id,
            claims.payload,
        ) = fields
        claims.__class__ = ParaClaims
        return claims  # type: ignore[no-any-return]


_ParaClaimsDraft = _draft_class(ParaClaims)
