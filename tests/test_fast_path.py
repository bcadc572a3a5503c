"""The verify fast path keeps every rule: each shortcut is checked against the slow way.

Tokens are signed for real (MockPara's keys, pinned), so a refusal here is the
rule at work, not a bad signature.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import pickle
from typing import Any

import pytest
from joserfc.jws import JWSRegistry

from para_jwt import (
    InvalidClaimsError,
    InvalidSignatureError,
    MalformedTokenError,
    ParaClaims,
    ParaJWTError,
    ParaVerifier,
    TokenExpiredError,
    Wallet,
    WalletType,
)
from para_jwt.jwks import KeySet
from para_jwt.testing import MockPara
from para_jwt.verifier import _cache_key
from tests.conftest import FakeClock

NOW = 1_800_000_000


@pytest.fixture
def para(clock: FakeClock) -> MockPara:
    return MockPara(clock=clock)  # signs and publishes keys without listening


def pinned(para: MockPara, clock: FakeClock, **options: Any) -> ParaVerifier:
    return ParaVerifier(para.api_key_id, jwks=para.jwks(), clock=clock, **options)


def payload_text(para: MockPara, **data: Any) -> str:
    """A Para payload as compact JSON text, ``data`` members added to Para's own."""
    token = para.issue_jwt(extra_data=data)
    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


def signed(para: MockPara, payload: str | bytes, header: bytes | None = None) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return para.sign(raw, header=header)


# --- repeated member names: the counting proof, and its fallback ------------------------


@pytest.mark.parametrize(
    ("find", "replace"),
    [
        ('"iat":', '"aud":"x","iat":'),  # root
        ('"userId":', '"email":"a@b.c","userId":'),  # data
        ('"type":"EVM"', '"type":"EVM","id":"w"'),  # a wallet
        ('"data":', '"extra":{"k":1,"k":2},"data":'),  # an object no shortcut visits
        ('"iat":', '"\\u0069at":1,"iat":'),  # equal only once decoded
    ],
)
async def test_repeated_names_are_refused_anywhere(
    para: MockPara, clock: FakeClock, find: str, replace: str
) -> None:
    text = payload_text(para)
    assert find in text
    token = signed(para, text.replace(find, replace, 1))
    with pytest.raises(MalformedTokenError, match="duplicate member name"):
        await pinned(para, clock).verify(token)


async def test_repeated_names_in_connected_wallets_are_refused(
    para: MockPara, clock: FakeClock
) -> None:
    text = payload_text(para, connectedWallets=[para.make_wallet("EVM")])
    token = signed(para, text.replace('"type":"EVM"', '"type":"EVM","type":"SUI"', 2))
    with pytest.raises(MalformedTokenError, match="duplicate member name"):
        await pinned(para, clock).verify(token)


async def test_a_repeated_header_name_is_refused(para: MockPara, clock: FakeClock) -> None:
    header = f'{{"alg":"RS256","kid":"{para.current_kid}","alg":"RS256"}}'.encode()
    token = signed(para, payload_text(para), header=header)
    with pytest.raises(MalformedTokenError, match="header is not strict JSON"):
        await pinned(para, clock).verify(token)


@pytest.mark.parametrize(
    "reshape",
    [
        lambda t: t.replace('"iat":', '"iss":"https://api.getpara.com","iat":'),  # ':' in a string
        lambda t: t.replace('"iat":', '"extra":{"nested":{"a":[1,{"b":2}]}},"iat":'),
        lambda t: f" {t}\n",  # whitespace JSON allows around the document
        lambda t: t.replace('"iat":', '"many":[[1],[2],[3],[4],[5],[6],[7],[8],[9]],"iat":'),
    ],
    ids=["colon-in-string", "unvisited-objects", "whitespace", "many-brackets"],
)
async def test_payloads_outside_the_shortcut_verify_the_slow_way(
    para: MockPara, clock: FakeClock, reshape: Any
) -> None:
    text = reshape(payload_text(para))
    claims = await pinned(para, clock).verify(signed(para, text))
    assert claims.payload == json.loads(text)


@pytest.mark.parametrize(("depth", "accepted"), [(16, True), (17, False)])
async def test_the_depth_bound_holds_on_the_verify_path(
    para: MockPara, clock: FakeClock, depth: int, accepted: bool
) -> None:
    nested = "[" * (depth - 1) + "]" * (depth - 1)  # inside the root object
    token = signed(para, payload_text(para).replace('"iat":', f'"deep":{nested},"iat":'))
    if accepted:
        await pinned(para, clock).verify(token)
    else:
        with pytest.raises(MalformedTokenError, match="nests deeper than 16"):
            await pinned(para, clock).verify(token)


async def test_nan_is_refused_on_the_verify_path(para: MockPara, clock: FakeClock) -> None:
    token = signed(para, payload_text(para).replace('"iat":', '"x":NaN,"iat":'))
    with pytest.raises(MalformedTokenError, match="NaN is not valid JSON"):
        await pinned(para, clock).verify(token)


async def test_only_headers_of_verified_tokens_are_remembered(
    para: MockPara, clock: FakeClock
) -> None:
    verifier = pinned(para, clock)
    header = f'{{"kid":"{para.current_kid}","alg":"RS256"}}'.encode()
    good = signed(para, payload_text(para), header=header)
    forged = good[: good.rindex(".") + 1] + "A" * 342
    with pytest.raises(InvalidSignatureError):
        await verifier.verify(forged)
    assert verifier._parser._known_headers == {}
    await verifier.verify(good)
    assert verifier._parser._known_headers == {good.split(".")[0].encode(): json.loads(header)}


async def test_remembered_headers_are_bounded(para: MockPara, clock: FakeClock) -> None:
    verifier = pinned(para, clock)
    for extra in range(40):
        header = f'{{"alg":"RS256","kid":"{para.current_kid}","n{extra}":1}}'.encode()
        await verifier.verify(signed(para, payload_text(para), header=header))
        assert 1 <= len(verifier._parser._known_headers) <= 16


# --- signature checks bound once per key agree with joserfc's -----------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_bound_checks_agree_with_joserfc(alg: str) -> None:
    mock = MockPara(alg=alg)
    key = KeySet.from_jwks(mock.jwks()).key(mock.current_kid)
    token = mock.issue_jwt()
    signing_input, _, signature_b64 = token.encode().rpartition(b".")
    signature = base64.urlsafe_b64decode(signature_b64 + b"=" * (-len(signature_b64) % 4))
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    for candidate in (signature, tampered, signature[:-1], signature + b"\0"):
        expected = JWSRegistry.algorithms[alg].verify(signing_input, candidate, key.key)
        assert key.checks[alg](signing_input, candidate) is expected
    assert key.checks[alg](signing_input, signature) is True


def test_a_key_has_checks_exactly_for_its_algorithms() -> None:
    mock = MockPara()
    jwk = {name: v for name, v in mock.public_jwk().items() if name != "alg"}
    key = KeySet.from_jwks({"keys": [jwk]}).key(jwk["kid"])
    rsa = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert set(key.checks) == key.algorithms == rsa
    assert "ES256" not in key.checks


# --- claims are the dataclass's own instances ---------------------


async def test_claims_equal_what_the_dataclass_constructor_builds(
    para: MockPara, clock: FakeClock
) -> None:
    evm = para.make_wallet("evm")
    token = para.issue_jwt(
        connected_wallets=[evm], oauth_method="google", extra_data={"telegramUserId": 42}
    )
    claims = await pinned(para, clock).verify(token)
    values = {f.name: getattr(claims, f.name) for f in dataclasses.fields(ParaClaims)}
    assert type(claims) is ParaClaims
    assert claims == ParaClaims(**values)
    assert repr(claims) == repr(ParaClaims(**values))
    assert claims.connected_wallets == (
        Wallet(evm["id"], WalletType.EVM, evm["address"], evm["publicKey"]),
    )
    assert type(claims.connected_wallets[0]) is Wallet
    assert claims.telegram_user_id == "42"
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.user_id = "someone-else"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.wallets[0].address = "0xattacker"  # type: ignore[misc]


def test_subclasses_of_the_claims_are_built_by_their_constructor(para: MockPara) -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class AppClaims(ParaClaims):
        pass

    text = payload_text(para)
    built = AppClaims.from_payload(json.loads(text), audience=para.api_key_id, key_id="k")
    assert type(built) is AppClaims
    plain = ParaClaims.from_payload(json.loads(text), audience=para.api_key_id, key_id="k")
    assert dataclasses.astuple(built) == dataclasses.astuple(plain)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        # Two broken fields: the first in documented order is named.
        ({"authType": 1, "identifier": 2}, "data.authType"),
        ({"wallets": "x", "email": 2}, "data.wallets"),
        ({"phone": 1, "telegramUserId": 1.5}, "data.phone"),
        ({"telegramUserId": True, "farcasterUsername": 1}, "data.telegramUserId"),
    ],
)
async def test_the_first_broken_data_field_is_named(
    para: MockPara, clock: FakeClock, data: dict[str, Any], says: str
) -> None:
    token = para.issue_jwt(extra_data=data)
    with pytest.raises(InvalidClaimsError, match=says):
        await pinned(para, clock).verify(token)


# --- the verified-token cache -------------------------------------------------------------


async def test_only_exact_str_and_bytes_meet_the_cache(para: MockPara, clock: FakeClock) -> None:
    class Token(str):
        __slots__ = ()

        def __hash__(self) -> int:
            return 0

        def __eq__(self, other: object) -> bool:
            return True  # would match any cached token

    verifier = pinned(para, clock)
    first = await verifier.verify(para.issue_jwt())
    other = para.issue_jwt()
    claims = await verifier.verify(Token(other))
    assert claims is not first
    assert claims.user_id != first.user_id
    assert len(verifier._token_cache) == 1  # type: ignore[arg-type]
    for junk in ([other], {other: 1}, bytearray(other.encode())):
        with pytest.raises(MalformedTokenError, match="must be str or bytes"):
            await verifier.verify(junk)  # type: ignore[arg-type]


async def test_an_expired_hit_is_refused_and_forgotten(para: MockPara, clock: FakeClock) -> None:
    verifier = pinned(para, clock)
    token = para.issue_jwt(expires_in=60)
    await verifier.verify(token)
    assert _cache_key(token) in verifier._token_cache  # type: ignore[operator]
    clock.advance(60)
    with pytest.raises(TokenExpiredError):
        await verifier.verify(token)
    assert _cache_key(token) not in verifier._token_cache  # type: ignore[operator]


def ending_like(token: str, payload: dict[str, Any]) -> str:
    """A forgery: ``payload`` under ``token``'s header and signature (so its tail)."""
    header, _, signature = token.split(".")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


async def test_a_token_ending_like_a_cached_one_is_verified_in_full(
    para: MockPara, clock: FakeClock
) -> None:
    """The cache is keyed by a token's tail (``_cache_key``); a hit needs the whole token."""
    verifier = pinned(para, clock)
    token = para.issue_jwt()
    claims = await verifier.verify(token)
    payload = json.loads(payload_text(para))
    forged = ending_like(token, payload)
    assert _cache_key(forged) == _cache_key(token) and forged != token
    with pytest.raises(InvalidSignatureError):
        await verifier.verify(forged)
    with pytest.raises(MalformedTokenError):
        await verifier.verify("x" + token)
    assert await verifier.verify(token) is claims  # still cached, not evicted by either


async def test_the_token_cache_answers_as_verifying_every_time(
    para: MockPara, clock: FakeClock
) -> None:
    """The plain reference: a verifier with no token cache, on the same tokens in turn."""
    cached, plain = pinned(para, clock, token_cache_size=2), pinned(para, clock, token_cache_size=0)
    tokens = [para.issue_jwt(expires_in=60 * (1 + i)) for i in range(3)]
    other = json.loads(payload_text(para))
    forgeries = [ending_like(t, other) for t in tokens]
    # Hits, misses, evictions (size 2 for 3 tokens), forgeries sharing each tail,
    # bytes next to str, and expiry as the clock moves.
    sequence = [*tokens, *forgeries, *tokens[::-1], tokens[0].encode(), tokens[0], *forgeries]
    for step in range(4):
        for token in sequence:
            outcomes = []
            for verifier in (cached, plain):
                try:
                    outcomes.append((await verifier.verify(token)).payload.copy())
                except ParaJWTError as exc:
                    outcomes.append(type(exc))
            assert outcomes[0] == outcomes[1], (step, token[-40:])
        clock.advance(50)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**400, -(10**400), 1e400, True])
async def test_out_of_range_dates_are_invalid_claims(
    para: MockPara, clock: FakeClock, claim: str, value: Any
) -> None:
    text = payload_text(para)
    members = json.loads(text)
    members[claim] = "VALUE"
    literal = "1e400" if value == 1e400 else json.dumps(value)
    token = signed(para, json.dumps(members, separators=(",", ":")).replace('"VALUE"', literal))
    with pytest.raises(InvalidClaimsError, match=f"'{claim}' must be a NumericDate"):
        await pinned(para, clock).verify(token)


async def test_a_handler_cannot_change_the_payload_the_next_hit_returns(
    para: MockPara, clock: FakeClock
) -> None:
    verifier = pinned(para, clock)
    token = para.issue_jwt(expires_in=60, email="a@example.com")
    claims = await verifier.verify(token)
    with pytest.raises(TypeError):
        claims.payload["exp"] = NOW + 10**6  # type: ignore[index]
    with pytest.raises(TypeError):
        claims.payload["data"]["email"] = "attacker@example.com"
    with pytest.raises(AttributeError):
        claims.payload["data"]["wallets"].append({})
    mine = claims.payload.copy()
    mine["data"]["email"] = "attacker@example.com"
    mine["exp"] = NOW + 10**6
    again = await verifier.verify(token)
    assert again is claims  # a hit
    assert again.payload["data"]["email"] == "a@example.com"
    clock.advance(60)
    with pytest.raises(TokenExpiredError):
        await verifier.verify(token)


async def test_claims_copy_pickle_hash_and_asdict(para: MockPara, clock: FakeClock) -> None:
    claims = await pinned(para, clock).verify(para.issue_jwt())
    assert copy.deepcopy(claims) == claims
    assert pickle.loads(pickle.dumps(claims)) == claims  # noqa: S301 - our own bytes
    assert hash(claims) == hash(copy.deepcopy(claims))
    as_dict = dataclasses.asdict(claims)
    assert as_dict["payload"] == claims.payload.copy()
    assert as_dict["user_id"] == claims.user_id
