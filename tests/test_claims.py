"""Para's own claims: ``sub`` and ``data``, typed into ``ParaClaims`` by a real verify."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from tokens import (
    ABSENT,
    API_KEY_ID,
    NOW,
    USER_ID,
    assert_rejected,
    para_key,
    para_payload,
    pinned_verifier,
    with_data,
)

from para_jwt import (
    AuthType,
    InvalidClaimsError,
    OAuthMethod,
    ParaClaims,
    Wallet,
    WalletType,
)
from para_jwt.claims import _member


async def verified(payload: dict[str, Any]) -> ParaClaims:
    return await pinned_verifier().verify(para_key().sign(payload))


def wallet(**fields: Any) -> dict[str, Any]:
    usual = {"id": "w-1", "type": "EVM", "address": "0xabc", "publicKey": "0x04ab"}
    return {name: value for name, value in {**usual, **fields}.items() if value is not ABSENT}


async def test_para_claims_are_typed() -> None:
    payload = para_payload()
    claims = await verified(payload)
    assert claims.user_id == USER_ID
    assert claims.subject == USER_ID
    assert claims.audience == API_KEY_ID
    assert claims.key_id == para_key().kid
    assert claims.auth_type is AuthType.EMAIL
    assert claims.email == "ada@example.com"
    assert claims.identifier == "ada@example.com"
    assert claims.phone is None
    assert claims.oauth_method is None
    assert claims.payload == payload
    assert claims.issued_at == datetime.fromtimestamp(NOW, UTC)
    assert claims.expires_at == datetime.fromtimestamp(NOW + 1800, UTC)
    assert claims.issued_at.tzinfo is UTC
    assert claims.expires_at.tzinfo is UTC
    evm, solana = payload["data"]["wallets"]
    assert claims.wallets == (
        Wallet(evm["id"], WalletType.EVM, evm["address"], evm["publicKey"]),
        Wallet(solana["id"], WalletType.SOLANA, solana["address"], ""),
    )
    assert claims.connected_wallets == ()


async def test_wallets_are_found_by_type() -> None:
    second_evm = wallet(id="w-2", address="0xdef")
    claims = await verified(with_data(wallets=[*para_payload()["data"]["wallets"], second_evm]))
    first_evm = claims.wallets[0]
    assert claims.wallet("EVM") is first_evm
    assert claims.wallet("evm") is first_evm
    assert claims.wallet(WalletType.EVM) is first_evm
    assert [w.address for w in claims.wallets_of(WalletType.EVM)] == [first_evm.address, "0xdef"]
    assert claims.wallets_of(WalletType.SOLANA) == (claims.wallets[1],)
    assert claims.wallet("SUI") is None
    assert claims.wallets_of("COSMOS") == ()


async def test_connected_wallets_are_kept_apart_from_para_wallets() -> None:
    connected = wallet(id="ext-1", address="0xfeed", publicKey=ABSENT)
    claims = await verified(with_data(wallets=[], connectedWallets=[connected]))
    assert claims.wallets == ()
    assert claims.wallet("EVM") is None
    assert claims.connected_wallets == (Wallet("ext-1", WalletType.EVM, "0xfeed", None),)


async def test_claims_and_wallets_are_frozen() -> None:
    claims = await verified(para_payload())
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.user_id = "someone-else"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.wallets[0].address = "0xattacker"  # type: ignore[misc]
    assert isinstance(claims.wallets, tuple)
    for value in (claims, claims.wallets[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.is_admin = True  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del claims.user_id  # type: ignore[misc]


async def test_claims_built_without_init_equal_the_constructors() -> None:
    """``_frozen`` (the fast build, see claims.py) against the plain ``cls(**fields)``."""
    claims = await verified(para_payload())
    for value in (claims, *claims.wallets, *claims.connected_wallets):
        cls = type(value)
        assert not hasattr(cls, "__post_init__")  # _frozen would skip it
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(cls)}
        assert set(vars(value)) == set(fields)  # every field set, nothing else
        plain = cls(**fields)
        assert value == plain
        assert hash(value) == hash(plain)
        assert repr(value) == repr(plain)
        assert copy.deepcopy(value) == value
        assert pickle.loads(pickle.dumps(value)) == value  # noqa: S301 (our own bytes)
        assert dataclasses.replace(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("google", OAuthMethod.GOOGLE), ("GOOGLE", OAuthMethod.GOOGLE), ("Apple", OAuthMethod.APPLE)],
)
async def test_oauth_method_ignores_case(value: str, expected: OAuthMethod) -> None:
    claims = await verified(with_data(oAuthMethod=value))
    assert claims.oauth_method is expected
    assert claims.oauth_method.is_known


@pytest.mark.parametrize(
    ("field", "value", "read"),
    [
        ("authType", "passkey", lambda c: c.auth_type),
        ("oAuthMethod", "github", lambda c: c.oauth_method),
        ("wallets", [wallet(type="BITCOIN")], lambda c: c.wallets[0].type),
    ],
)
async def test_unknown_enum_values_are_kept(field: str, value: Any, read: Any) -> None:
    kept = read(await verified(with_data(**{field: value})))
    assert not kept.is_known
    assert kept == (value if isinstance(value, str) else "BITCOIN")


@pytest.mark.parametrize("enum", [AuthType, OAuthMethod, WalletType])
def test_the_member_table_answers_what_the_enum_does(enum: Any) -> None:
    """``_member`` (a dict lookup, then the enum) against the plain ``enum(value)``."""
    values = [member.value for member in enum]
    values += [spelling(v) for v in values for spelling in (str.lower, str.upper, str.title)]
    # Unknown values, near misses, and a full-width "EVM" that upper-cases to itself.
    values += ["passkey", "github", "BITCOIN", "", " EVM", "evm\n", "\uff25\uff36\uff2d", "x\x00"]
    for value in values:
        plain = enum(value)
        fast = _member(enum, value)
        assert type(fast) is type(plain) is enum
        assert fast == plain
        assert fast.is_known == plain.is_known
        assert fast.name == plain.name
        if plain.is_known:
            assert fast is plain  # the members themselves, never copies


async def test_wallet_type_ignores_case() -> None:
    claims = await verified(with_data(wallets=[wallet(type="evm")]))
    assert claims.wallets[0].type is WalletType.EVM


async def test_unknown_extra_fields_are_allowed() -> None:
    payload = with_data(
        newField={"nested": [1, 2]},
        phone="+15551234567",
        telegramUserId=123456789,
        wallets=[wallet(createdAt="2025-01-01", scheme="DKLS")],
    )
    payload.update(iss="https://api.getpara.com", jti="abc", nbf=NOW - 5)
    claims = await verified(payload)
    assert claims.payload["data"]["newField"] == {"nested": [1, 2]}
    assert claims.phone == "+15551234567"
    assert claims.telegram_user_id == "123456789"


async def test_sub_is_optional() -> None:
    claims = await verified(para_payload(sub=ABSENT))
    assert claims.subject is None
    assert claims.user_id == USER_ID


@pytest.mark.parametrize("sub", ["8b1f0e2d-0000-4000-8000-000000000000", USER_ID.upper(), ""])
async def test_sub_must_be_data_user_id(sub: str) -> None:
    token = para_key().sign(para_payload(sub=sub))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, "does not match")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (ABSENT, "'data' claim must be an object"),
        (None, "'data' claim must be an object"),
        ([{"userId": USER_ID}], "'data' claim must be an object"),
        (USER_ID, "'data' claim must be an object"),
        ({}, "data.userId must be a non-empty string"),
        ({"userId": ""}, "data.userId must be a non-empty string"),
        ({"userId": 42}, "data.userId must be a non-empty string"),
        ({"userId": [USER_ID]}, "data.userId must be a non-empty string"),
    ],
)
async def test_data_must_be_an_object_with_a_user_id(data: Any, says: str) -> None:
    token = para_key().sign(para_payload(data=data, sub=ABSENT))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, says)


@pytest.mark.parametrize("field", ["wallets", "connectedWallets"])
@pytest.mark.parametrize(
    ("wallets", "says"),
    [
        ("0xabc", "must be a list"),
        ({"0": wallet()}, "must be a list"),
        ([wallet(), "0xabc"], "entries must be objects"),
        ([None], "entries must be objects"),
        ([[wallet()]], "entries must be objects"),
        ([wallet(address=ABSENT)], "need string"),
        ([wallet(address=None)], "need string"),
        ([wallet(address=123)], "need string"),
        ([wallet(type=ABSENT)], "need string"),
        ([wallet(type=1)], "need string"),
        ([wallet(type=["EVM"])], "need string"),
        ([wallet(id=ABSENT)], "need string"),
        ([wallet(id=7)], "need string"),
        ([wallet(publicKey=4)], "need string"),
        ([wallet(publicKey=["0x04"])], "need string"),
    ],
)
async def test_malformed_wallets_are_refused(field: str, wallets: Any, says: str) -> None:
    token = para_key().sign(with_data(**{field: wallets}))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, says)


@pytest.mark.parametrize(
    "field",
    [
        "authType",
        "oAuthMethod",
        "email",
        "identifier",
        "phone",
        "farcasterUsername",
        "externalWalletAddress",
    ],
)
@pytest.mark.parametrize("value", [5, True, ["x"], {"x": 1}])
async def test_string_fields_of_data_must_be_strings(field: str, value: Any) -> None:
    token = para_key().sign(with_data(**{field: value}))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, f"data.{field}")


@pytest.mark.parametrize("value", [True, 1.5, ["1"], {"id": 1}])
async def test_telegram_user_id_is_a_string_or_an_integer(value: Any) -> None:
    token = para_key().sign(with_data(telegramUserId=value))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, "data.telegramUserId")
