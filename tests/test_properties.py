"""Property tests: what para_jwt promises about *every* input, not a chosen few.

1. Any mutation of a valid token is rejected with an ``InvalidTokenError``.
2. Any ``str``/``bytes`` input raises nothing outside ``ParaJWTError``, quickly,
   and costs no request to Para beyond the bounded unknown-kid refetches.
3. Any JSON payload signed with Para's key is accepted exactly when an
   independent oracle of the documented claim rules says so, and the typed
   claims then say what the payload says.
4. Any key-set document, imported directly or fetched over HTTP, never crashes
   the cache and never yields a usable private, symmetric, weak or malformed key.

Budgets: the default profile ``ci`` (what ``make check``, so CI, runs) is
derandomized (the same examples on every run, no example database) and bounded so
this file runs in well under a minute. ``make test`` runs the profile ``quick``:
the same, with a fifth of the examples. For a deeper search, with random seeds and
the local example database::

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/test_properties.py

(``long`` runs 50 times the examples; ``HYPOTHESIS_SCALE=<x>`` sets the factor.)
Verifiers with a pinned key set are driven without an event loop: they must
never wait on I/O, and ``_drive`` fails the test if one does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, OKPKey, RSAKey

from fuzz.targets import check_keyset
from para_jwt import (
    ConfigurationError,
    InvalidAudienceError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    JWKSCache,
    JWKSUnavailableError,
    KeySet,
    MalformedTokenError,
    ParaClaims,
    ParaJWTError,
    ParaVerifier,
    TokenExpiredError,
    TokenNotYetValidError,
    UnknownKeyError,
)
from para_jwt.testing import FakeClock, MockPara

# --- budgets ---------------------------------------------------------------------------

settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("quick", settings.get_profile("ci"))
settings.register_profile("long", deadline=None, print_blob=True)
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
_SCALE = float(
    os.environ.get("HYPOTHESIS_SCALE", {"quick": "0.2", "long": "50"}.get(_PROFILE, "1"))
)


def budget(examples: int, **options: Any) -> settings:
    return settings(
        settings.get_profile(_PROFILE), max_examples=max(1, round(examples * _SCALE)), **options
    )


# `make test` runs this file in the quick profile; `make slow-checks` (`-m budget`) runs it
# again in the CI one.
pytestmark = pytest.mark.budget

# MockPara and its clock are per test, shared by the examples of that test on purpose.
_SHARED_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# --- a Para that only signs (never started: the pinned tests need no server) ------------

NOW = 1_800_000_000.0
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last date Python can show
ISSUER = MockPara(clock=lambda: NOW)
API_KEY_ID = ISSUER.api_key_id
TOKENS = (
    ISSUER.issue_jwt(),
    ISSUER.issue_jwt(
        auth_type="phone",
        oauth_method="google",
        connected_wallets=[MockPara.make_wallet("EVM")],
        extra_data={"telegramUserId": 42},
    ),
    ISSUER.issue_jwt(audience=["another-app", API_KEY_ID.upper()], nbf=int(NOW) - 5),
)


def pinned_verifier(**options: Any) -> ParaVerifier:
    return ParaVerifier(API_KEY_ID, jwks=ISSUER.jwks(), clock=lambda: NOW, **options)


def _drive(coroutine: Coroutine[Any, Any, ParaClaims]) -> ParaClaims:
    try:
        coroutine.send(None)
    except StopIteration as done:
        claims: ParaClaims = done.value
        return claims
    coroutine.close()
    raise AssertionError("verify() waited on I/O with a pinned key set")


def outcome(verifier: ParaVerifier, token: str | bytes) -> ParaClaims | ParaJWTError:
    """The claims, or the ParaJWTError; any other exception fails the test."""
    try:
        return _drive(verifier.verify(token))
    except ParaJWTError as error:
        return error


# One verifier for every mutation, its token cache warm with the originals: a
# mutated token must not be answered from the cache either.
MUTATION_VERIFIER = pinned_verifier()
for _token in TOKENS:
    _drive(MUTATION_VERIFIER.verify(_token))


def test_the_tokens_that_get_mutated_verify() -> None:
    for token in TOKENS:
        assert isinstance(outcome(MUTATION_VERIFIER, token), ParaClaims)
        assert isinstance(outcome(MUTATION_VERIFIER, token.encode()), ParaClaims)


# --- 1. mutations ---------------------------------------------------------------------

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _replace_segment(token: str, index: int, new: str) -> str:
    segments = token.split(".")
    segments[index] = new
    return ".".join(segments)


@st.composite
def mutated_tokens(draw: st.DrawFn) -> str | bytes:
    token: str = draw(st.sampled_from(TOKENS))
    segments = token.split(".")
    position = draw(st.integers(0, len(token) - 1))
    segment = draw(st.integers(0, 2))
    kind = draw(
        st.sampled_from(
            [
                "flip",
                "swap",
                "padding",
                "standard-alphabet",
                "non-canonical-last",
                "whitespace",
                "truncate",
                "append",
                "prepend",
                "case",
                "delete",
                "insert",
                "segments",
                "re-serialize",
                "lookalike",
            ]
        )
    )
    if kind == "flip":
        raw = bytearray(token.encode())
        raw[position] ^= draw(st.integers(1, 255))
        return bytes(raw)
    if kind == "swap":
        return ".".join(draw(st.permutations(segments)))
    if kind == "padding":
        return _replace_segment(token, segment, segments[segment] + "=" * draw(st.integers(1, 3)))
    if kind == "standard-alphabet":
        return token.translate(str.maketrans("-_", "+/"))
    if kind == "non-canonical-last":
        # Set unused low bits of the last character: the same bytes in a decoder
        # that ignores them, so a lenient verifier would accept a second spelling.
        value = segments[segment]
        unused_bits = {2: 4, 3: 2}.get(len(value) % 4)
        assume(unused_bits is not None)
        assert unused_bits is not None
        index = _B64URL.index(value[-1])
        low = draw(st.integers(1, (1 << unused_bits) - 1))
        return _replace_segment(token, segment, value[:-1] + _B64URL[index | low])
    if kind == "whitespace":
        space = draw(st.sampled_from([" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\xa0"]))
        return token[:position] + space + token[position:]
    if kind == "truncate":
        return token[:position]
    if kind == "append":
        tail = draw(st.sampled_from([".", "=", "==", "A", "AA", ".e30", "\n", "\x00", "..."]))
        return token + tail
    if kind == "prepend":
        return draw(st.sampled_from(["Bearer ", " ", ".", "\ufeff", "A"])) + token
    if kind == "case":
        assume(token[position].isalpha())
        return token[:position] + token[position].swapcase() + token[position + 1 :]
    if kind == "delete":
        return token[:position] + token[position + 1 :]
    if kind == "insert":
        return token[:position] + draw(st.sampled_from(_B64URL + ".=+/")) + token[position:]
    if kind == "segments":
        extra = draw(st.sampled_from(["drop", "repeat", "empty"]))
        if extra == "drop":
            return ".".join(segments[:segment] + segments[segment + 1 :])
        if extra == "repeat":
            return ".".join([*segments, segments[segment]])
        return _replace_segment(token, segment, "")
    if kind == "re-serialize":
        # The same JSON, serialized differently: equal as data, not as signed bytes.
        index = draw(st.integers(0, 1))
        value = json.loads(_unb64url(segments[index]))
        spelled = json.dumps(
            value, separators=draw(st.sampled_from([(", ", ": "), (",", ":")])), sort_keys=True
        )
        return _replace_segment(token, index, _b64url(spelled.encode()))
    # "lookalike": a non-ASCII character that looks or normalizes like the original.
    lookalike = {"A": "\u0391", "a": "\u0430", "0": "\uff10", "-": "\u2010", ".": "\u2024"}
    candidates = [i for i, c in enumerate(token) if c in lookalike]
    index = candidates[position % len(candidates)]
    return token[:index] + lookalike[token[index]] + token[index + 1 :]


@budget(400)
@given(mutated=mutated_tokens())
def test_every_mutation_of_a_valid_token_is_rejected(mutated: str | bytes) -> None:
    as_bytes = mutated if isinstance(mutated, bytes) else mutated.encode("utf-8", "surrogatepass")
    # Only a byte-identical token may verify.
    assume(as_bytes.decode("latin-1") not in TOKENS)
    for spelling in (mutated, as_bytes, as_bytes.decode("latin-1")):
        result = outcome(MUTATION_VERIFIER, spelling)
        assert isinstance(result, InvalidTokenError), (spelling, result)


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 0), (_P256_ORDER, _P256_ORDER), (0, 1), (1, 0), (_P256_ORDER + 1, 1)],
    ids=["zero", "order", "r-zero", "s-zero", "over-order"],
)
def test_psychic_ecdsa_signatures_are_rejected(r: int, s: int) -> None:
    # CVE-2022-21449: Java accepted r = s = 0 for any message. Here ES256 is
    # opt-in, and OpenSSL (through cryptography) does the range checks.
    issuer = MockPara(alg="ES256", clock=lambda: NOW)
    head, payload, _ = issuer.issue_jwt().split(".")
    verifier = ParaVerifier(
        issuer.api_key_id, jwks=issuer.jwks(), algorithms=("ES256",), clock=lambda: NOW
    )
    forged = (
        f"{head}.{payload}.{_b64url(r.to_bytes(33, 'big')[-32:] + s.to_bytes(33, 'big')[-32:])}"
    )
    assert isinstance(outcome(verifier, forged), InvalidSignatureError)


# --- 2. arbitrary input ---------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _segment_of(value: Any) -> str:
    return _b64url(json.dumps(value).encode())


@st.composite
def compact_garbage(draw: st.DrawFn, audience: str = API_KEY_ID) -> str:
    """Three base64url segments that get past the parser: the deep end of garbage."""
    header = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "alg": st.sampled_from(["RS256", "PS256", "ES256", "HS256", "none", "RS256 "])
                | json_values,
                "kid": st.text(max_size=50) | st.sampled_from([ISSUER.current_kid]) | json_values,
                "typ": st.sampled_from(["JWT", "jwt", "at+jwt"]) | json_values,
                "crit": json_values,
                "jwk": st.just(ISSUER.public_jwk()),
                "jku": st.just("https://attacker.example/jwks.json"),
            },
        )
    )
    payload = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "aud": st.sampled_from([audience, audience.upper()]) | json_values,
                "exp": st.floats(NOW - 10, NOW + 10_000) | json_values,
                "sub": st.text(max_size=10),
                "data": st.fixed_dictionaries({"userId": st.text(max_size=10)}) | json_values,
            },
        )
    )
    signature = draw(st.binary(max_size=300))
    return ".".join((_segment_of(header), _segment_of(payload), _b64url(signature)))


any_text = st.text(alphabet=st.characters(codec=None, categories=None), max_size=200)
garbage = (
    st.binary(max_size=400)
    | any_text
    | compact_garbage()
    | st.lists(st.text(_B64URL, max_size=40), min_size=1, max_size=5).map(".".join)
)

# Big and deep inputs no random draw is likely to make.
_DEEP_PAYLOAD = _b64url(b"[" * 5000 + b"]" * 5000)
_HUGE_NUMBER = _b64url(b'{"exp": 1' + b"0" * 5000 + b"}")


@budget(300, deadline=2000)  # "never hangs": each input is answered within 2 s
@given(token=garbage)
@example(token=b"a" * 16_385)
@example(token="." * 20_000)
@example(token=f"{_segment_of({'alg': 'RS256', 'kid': 'k'})}.{_DEEP_PAYLOAD}.AAAA")
@example(token=f"{_segment_of({'alg': 'RS256', 'kid': 'k'})}.{_HUGE_NUMBER}.AAAA")
@example(token="\ud800.\udfff.x")
def test_arbitrary_input_raises_only_invalid_token_errors(token: str | bytes) -> None:
    verifier = pinned_verifier(token_cache_size=16)
    first = outcome(verifier, token)
    assert isinstance(first, InvalidTokenError), first
    # Asking twice (the verified-token cache's path) gives the same answer.
    assert type(outcome(verifier, token)) is type(first)


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock, api_key_id=API_KEY_ID) as mock:
        yield mock


@pytest.fixture
async def warm_verifier(para: MockPara) -> AsyncIterator[ParaVerifier]:
    async with para.verifier() as verifier:
        await verifier.verify(para.issue_jwt())
        assert para.jwks_requests == 1
        yield verifier


REFETCH_BUDGET = 2  # ParaVerifier's default refetch_budget per cooldown


@budget(150, suppress_health_check=_SHARED_FIXTURES)
@given(token=garbage)
async def test_garbage_costs_at_most_the_refetch_budget(
    para: MockPara, warm_verifier: ParaVerifier, token: str | bytes
) -> None:
    # The keys are fresh: garbage is always the caller's fault (401), never a 503.
    with pytest.raises(InvalidTokenError):
        await asyncio.wait_for(warm_verifier.verify(token), timeout=5)
    # The clock never moves here, so one cooldown window spans every example.
    assert para.jwks_requests <= 1 + REFETCH_BUDGET


async def test_a_fixed_flood_of_garbage_costs_exactly_the_refetch_budget(
    para: MockPara, warm_verifier: ParaVerifier
) -> None:
    # Never started: they only sign, under kids the verifier has never seen.
    strangers = [MockPara(api_key_id=API_KEY_ID, clock=para.clock) for _ in range(5)]
    flood: list[str | bytes] = [
        "",
        ".",
        "..",
        "a.b.c",
        b"\xff" * 10,
        "x" * 20_000,
        # Claims that fail before any key lookup: their unknown kids cost nothing.
        *(s.issue_jwt(expires_in=-10) for s in strangers),
        *(s.issue_jwt(audience=str(uuid.uuid4())) for s in strangers),
        # Plausible tokens under five unknown kids, then the same ones again.
        *(s.issue_jwt() for s in strangers),
        *(s.issue_jwt() for s in strangers),
    ]
    for token in flood:
        with pytest.raises(InvalidTokenError):
            await warm_verifier.verify(token)
    # The warm-up fetch, then two refetches for the first two unknown kids; the
    # budget refuses the rest and the negative cache answers the repeats.
    assert para.jwks_requests == 1 + REFETCH_BUDGET


# --- 3. signed payloads against an oracle of the documented rules ---------------------

_ABSENT = object()
_SAME_AS_USER = object()
_OPTIONAL_STRINGS = (
    "authType",
    "identifier",
    "email",
    "phone",
    "oAuthMethod",
    "farcasterUsername",
    "externalWalletAddress",
)
_KNOWN_WALLET_TYPES = {"EVM", "SOLANA", "COSMOS", "STELLAR", "SUI"}
_KNOWN_OAUTH = {
    "GOOGLE",
    "TWITTER",
    "X",
    "APPLE",
    "DISCORD",
    "FACEBOOK",
    "FARCASTER",
    "TELEGRAM",
    "CUSTOM_OIDC",
    "CUSTOM_OAUTH",
}
_FIELDS = ("aud", "exp", "nbf", "iat", "sub", "data", "userId", "wallets", "strings", "telegram")


def _absent_or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(_ABSENT) | st.none() | strategy


# A value of the wrong type for a string or list field (None is "absent", not wrong).
_WRONG = st.sampled_from([0, 1.5, True, False, [], ["x"], {}, {"a": "b"}]) | json_values
# The boundary itself is in every range: nbf == now is valid, exp == now is not.
_past = st.sampled_from([NOW, int(NOW)]) | st.integers(0, int(NOW)) | st.floats(0, NOW)
_future = st.integers(int(NOW) + 1, MAX_TIMESTAMP) | st.floats(NOW + 1e-3, MAX_TIMESTAMP)
_edge_times = st.sampled_from(
    [NOW, NOW - 0.5, NOW + 0.5, -1, MAX_TIMESTAMP, MAX_TIMESTAMP + 1, 1e300, True, False, "1"]
)
_wallet = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "type": st.sampled_from(["EVM", "SOLANA", "evm", "Sui", "APTOS", ""]),
        "address": st.text(max_size=44),
    },
    optional={"publicKey": st.none() | st.text(max_size=20)},
)


@st.composite
def _bad_wallet(draw: st.DrawFn) -> Any:
    wallet = draw(_wallet)
    name = draw(st.sampled_from(["id", "type", "address", "publicKey", "missing", "not-object"]))
    if name == "not-object":
        return draw(_WRONG)
    if name == "missing":
        del wallet[draw(st.sampled_from(["id", "type", "address"]))]
        return wallet
    return {**wallet, name: draw(_WRONG)}


_auds = st.sampled_from(
    [API_KEY_ID, API_KEY_ID.upper(), API_KEY_ID.title(), f"{API_KEY_ID[:-1]}\uff10"]
)


@st.composite
def signed_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Payloads near the boundary: every rule holds except in 0-2 fields drawn to break."""
    count = draw(st.integers(0, 2))
    broken = set(
        draw(st.lists(st.sampled_from(_FIELDS), min_size=count, max_size=count, unique=True))
    )

    def pick(field: str, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
        # A broken field draws from values that mostly break its rule (some may not:
        # the oracle, not the strategy, decides).
        return draw(bad if field in broken else good)

    user_id = pick("userId", st.uuids().map(str), _WRONG | st.just("") | st.just(_ABSENT))
    data: dict[str, Any] = {} if user_id is _ABSENT else {"userId": user_id}
    bad_list = draw(st.sampled_from(["wallets", "connectedWallets"]))
    for name in ("wallets", "connectedWallets"):
        data[name] = pick(
            "wallets" if name == bad_list else "",
            _absent_or(st.lists(_wallet, max_size=3)),
            _WRONG | st.lists(_bad_wallet(), min_size=1, max_size=2),
        )
    bad_string = draw(st.sampled_from(_OPTIONAL_STRINGS))
    for name in _OPTIONAL_STRINGS:
        data[name] = pick(
            "strings" if name == bad_string else "", _absent_or(st.text(max_size=20)), _WRONG
        )
    data["telegramUserId"] = pick(
        "telegram",
        _absent_or(st.text(max_size=12) | st.integers(-(2**70), 2**70)),
        st.sampled_from([True, False, 1.5, 42.0, [], {}]) | json_values,
    )
    data.update(draw(st.dictionaries(st.sampled_from(["chain", "x", "extra"]), json_values)))
    payload: dict[str, Any] = {
        "data": pick("data", st.just(data), json_values),
        "aud": pick(
            "aud",
            _auds | st.lists(st.text(max_size=8) | _auds, min_size=1, max_size=3),
            json_values | st.just("00000000-0000-4000-8000-000000000000") | st.just(_ABSENT),
        ),
        "exp": pick("exp", _future, _absent_or(_past | _edge_times | json_values)),
        "nbf": pick("nbf", _absent_or(_past), _future | _edge_times | json_values),
        "iat": pick("iat", _absent_or(_past), _future | _edge_times | json_values),
        "sub": pick(
            "sub",
            st.just(_ABSENT) | st.none() | st.just(_SAME_AS_USER),
            st.text(max_size=10) | json_values,
        ),
    }
    if payload["sub"] is _SAME_AS_USER:
        payload["sub"] = user_id
    payload.update(draw(st.dictionaries(st.sampled_from(["iss", "jti", "scope"]), json_values)))
    # Rarely, a value JSON cannot carry (json.dumps writes NaN; strict parsers refuse).
    if draw(st.integers(0, 49)) == 0:
        payload[draw(st.sampled_from(["exp", "extra"]))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf])
        )
    return _without_absent(payload)


def _without_absent(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_absent(v) for k, v in value.items() if v is not _ABSENT}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _not_finite_anywhere(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_not_finite_anywhere, value.values()))
    if isinstance(value, list):
        return any(map(_not_finite_anywhere, value))
    return False


def _numeric_date(value: Any) -> float | None:
    """The value as a NumericDate, ``None`` if absent; raises ValueError if invalid."""
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= MAX_TIMESTAMP:
        raise ValueError(value)
    return float(value)


def _audience_match(aud: Any) -> str | None:
    # The API key ID is a UUID: only ASCII case may differ.
    for item in aud if isinstance(aud, list) else [aud]:
        if isinstance(item, str) and item.isascii() and item.lower() == API_KEY_ID:
            return item
    return None


def _good_wallets(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, list) and all(
        isinstance(w, dict)
        and all(isinstance(w.get(name), str) for name in ("id", "type", "address"))
        and (w.get("publicKey") is None or isinstance(w["publicKey"], str))
        for w in value
    )


def violations(payload: dict[str, Any], token: str) -> set[type[InvalidTokenError]]:
    """Every documented rule the payload breaks, as the error each one calls for.

    Written from the README and Para's documentation, not from the code: the
    verifier must reject with one of these, or accept when there are none.
    """
    broken: set[type[InvalidTokenError]] = set()
    if _not_finite_anywhere(payload) or _depth(payload) > 16 or len(token) > 16 * 1024:
        broken.add(MalformedTokenError)
    if _audience_match(payload.get("aud")) is None:
        broken.add(InvalidAudienceError)
    try:
        exp = _numeric_date(payload.get("exp"))
        if exp is None:
            broken.add(InvalidClaimsError)
        elif exp <= NOW:
            broken.add(TokenExpiredError)
    except ValueError:
        broken.add(InvalidClaimsError)
    for name in ("nbf", "iat"):
        try:
            when = _numeric_date(payload.get(name))
            if when is not None and when > NOW:
                broken.add(TokenNotYetValidError)
        except ValueError:
            broken.add(InvalidClaimsError)
    data = payload.get("data")
    user_id = data.get("userId") if isinstance(data, dict) else None
    if not (isinstance(user_id, str) and user_id):
        broken.add(InvalidClaimsError)
    if payload.get("sub") is not None and payload.get("sub") != user_id:
        broken.add(InvalidClaimsError)
    if isinstance(data, dict):
        telegram = data.get("telegramUserId")
        if not (
            all(data.get(name) is None or isinstance(data[name], str) for name in _OPTIONAL_STRINGS)
            and _good_wallets(data.get("wallets"))
            and _good_wallets(data.get("connectedWallets"))
            and (telegram is None or type(telegram) in (int, str))
        ):
            broken.add(InvalidClaimsError)
    return broken


def _enum_value(value: str, known: set[str]) -> str:
    # Known values are canonicalized (case-insensitively); unknown ones kept as sent.
    return value.upper() if value.upper() in known else value


def _timestamp(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def check_round_trip(claims: ParaClaims, payload: dict[str, Any]) -> None:
    data = payload["data"]
    assert claims.payload == payload
    assert claims.user_id == data["userId"]
    assert claims.subject == payload.get("sub")
    assert _audience_match(payload["aud"]) is not None
    assert claims.audience == API_KEY_ID
    assert claims.expires_at == _timestamp(payload["exp"])
    assert claims.issued_at == _timestamp(payload.get("iat"))
    assert claims.key_id == ISSUER.current_kid
    pairs = ((claims.wallets, "wallets"), (claims.connected_wallets, "connectedWallets"))
    for typed, name in pairs:
        sent = data.get(name) or []
        assert [(w.id, w.type, w.address, w.public_key) for w in typed] == [
            (w["id"], _enum_value(w["type"], _KNOWN_WALLET_TYPES), w["address"], w.get("publicKey"))
            for w in sent
        ]
        assert [w.type.is_known for w in typed] == [
            w["type"].upper() in _KNOWN_WALLET_TYPES for w in sent
        ]
    assert claims.auth_type == data.get("authType")
    oauth = data.get("oAuthMethod")
    assert claims.oauth_method == (None if oauth is None else _enum_value(oauth, _KNOWN_OAUTH))
    assert claims.identifier == data.get("identifier")
    assert claims.email == data.get("email")
    assert claims.phone == data.get("phone")
    assert claims.farcaster_username == data.get("farcasterUsername")
    assert claims.external_wallet_address == data.get("externalWalletAddress")
    telegram = data.get("telegramUserId")
    assert claims.telegram_user_id == (None if telegram is None else str(telegram))


SIGNED_VERIFIER = pinned_verifier(token_cache_size=0)


def _para_payload(**changes: Any) -> dict[str, Any]:
    """A payload in Para's shape, valid at NOW, with top-level (or ``data_*``) changes."""
    user = "6f1e3c9a-8b7d-4e2f-9a1b-2c3d4e5f6a7b"
    data: dict[str, Any] = {
        "userId": user,
        "wallets": [{"id": "w1", "type": "EVM", "address": "0xabc", "publicKey": "0x04ab"}],
        "email": "ada@example.com",
        "authType": "email",
        "identifier": "ada@example.com",
    }
    payload: dict[str, Any] = {"data": data, "iat": NOW - 60, "exp": NOW + 1800, "sub": user}
    payload["aud"] = API_KEY_ID
    for name, value in changes.items():
        target, name = (data, name[5:]) if name.startswith("data_") else (payload, name)
        target[name] = value
    return _without_absent(payload)


_wallet_with = {"id": "w", "type": "SOLANA", "address": "So1"}.__or__
# Every rule at its boundary, on both sides: always run, before the random search.
BOUNDARY_PAYLOADS = [
    _para_payload(),
    _para_payload(nbf=NOW),
    _para_payload(nbf=NOW + 0.5),
    _para_payload(iat=NOW),
    _para_payload(iat=NOW + 1),
    _para_payload(iat=-1),
    _para_payload(exp=NOW),
    _para_payload(exp=NOW + 0.001),
    _para_payload(exp=MAX_TIMESTAMP),
    _para_payload(exp=MAX_TIMESTAMP + 1),
    _para_payload(exp=True),
    _para_payload(exp=str(int(NOW) + 60)),
    _para_payload(exp=None),
    _para_payload(exp=_ABSENT),
    _para_payload(exp=math.nan),
    _para_payload(aud=API_KEY_ID.upper()),
    _para_payload(aud=["other", API_KEY_ID]),
    _para_payload(aud=["other"]),
    _para_payload(aud=[]),
    _para_payload(aud=f"{API_KEY_ID[:-1]}\uff10"),
    _para_payload(aud=None),
    _para_payload(aud=_ABSENT),
    _para_payload(aud={"id": API_KEY_ID}),
    _para_payload(sub=None),
    _para_payload(sub=_ABSENT),
    _para_payload(sub="someone-else"),
    _para_payload(sub=5),
    _para_payload(data=_ABSENT),
    _para_payload(data=["not", "an", "object"]),
    _para_payload(data_userId=""),
    _para_payload(data_userId=5, sub=_ABSENT),
    _para_payload(data_wallets=None),
    _para_payload(data_wallets=[]),
    _para_payload(data_wallets={}),
    _para_payload(data_wallets=[_wallet_with({"publicKey": None})]),
    _para_payload(data_wallets=[_wallet_with({"publicKey": ""})]),
    _para_payload(data_wallets=[_wallet_with({"publicKey": 5})]),
    _para_payload(data_wallets=[{"type": "EVM", "address": "0xabc"}]),
    _para_payload(data_wallets=[_wallet_with({"address": None})]),
    _para_payload(data_wallets=["0xabc"]),
    _para_payload(data_wallets=[_wallet_with({"type": "evm"}), _wallet_with({"type": "APTOS"})]),
    _para_payload(data_connectedWallets=[_wallet_with({"id": 7})]),
    _para_payload(data_connectedWallets=[_wallet_with({})]),
    *(_para_payload(**{f"data_{name}": 5}) for name in _OPTIONAL_STRINGS),
    *(_para_payload(**{f"data_{name}": None}) for name in _OPTIONAL_STRINGS),
    _para_payload(data_oAuthMethod="google"),
    _para_payload(data_authType="EMAIL"),
    _para_payload(data_telegramUserId=42),
    _para_payload(data_telegramUserId="42"),
    _para_payload(data_telegramUserId=True),
    _para_payload(data_telegramUserId=4.2),
]


def _with_examples(name: str, cases: list[Any]) -> Callable[[Any], Any]:
    def decorate(test: Any) -> Any:
        for case in reversed(cases):
            test = example(**{name: case})(test)
        return test

    return decorate


@budget(500)
@given(payload=signed_payloads())
@_with_examples("payload", BOUNDARY_PAYLOADS)
def test_signed_payloads_are_accepted_exactly_when_every_rule_holds(
    payload: dict[str, Any],
) -> None:
    token = ISSUER.sign(payload)
    expected = violations(payload, token)
    result = outcome(SIGNED_VERIFIER, token)
    if expected:
        assert isinstance(result, InvalidTokenError), (expected, result)
        assert type(result) in expected, (expected, result)
    else:
        assert isinstance(result, ParaClaims), result
        check_round_trip(result, payload)


def test_the_payload_strategy_reaches_both_verdicts() -> None:
    # Without this, an oracle that always says "reject" would pass the test above.
    verdicts: set[bool] = set()

    @budget(200)
    @given(payload=signed_payloads())
    def collect(payload: dict[str, Any]) -> None:
        verdicts.add(not violations(payload, ISSUER.sign(payload)))

    collect()
    assert verdicts == {True, False}


# --- 4. hostile key sets ----------------------------------------------------------------

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # joserfc warns about the deliberately weak key
    _RSA_1024 = RSAKey.generate_key(1024)
_RSA = RSAKey.import_key(ISSUER.private_jwk())
_EC = ECKey.generate_key("P-256")
_OKP = OKPKey.generate_key("Ed25519")
_X25519 = OKPKey.generate_key("X25519")
_MATERIAL: list[dict[str, Any]] = [
    ISSUER.public_jwk(),
    _RSA.as_dict(private=True),
    _RSA_1024.as_dict(private=False),
    _EC.as_dict(private=False),
    _EC.as_dict(private=True),
    _OKP.as_dict(private=False),
    _OKP.as_dict(private=True),
    _X25519.as_dict(private=False),
    {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
    {"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA"},
]
# Targeted edits: each one alone decides whether a key may be used.
_EDITS: dict[str, st.SearchStrategy[Any]] = {
    "alg": st.sampled_from(
        ["RS256", "PS512", "ES256", "ES512", "EdDSA", "Ed25519", "HS256", "none", ["RS256"]]
    ),
    "use": st.sampled_from(["sig", "enc", "", ["sig"], None]),
    "key_ops": st.sampled_from([["verify"], ["sign"], ["verify", "sign"], "verify", []]),
    "crv": st.sampled_from(["P-256", "P-384", "Ed25519", "X25519", "secp256k1", 1]),
    "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "rsa", "AKP", 1]),
    "d": st.sampled_from(["AQAB", ""]),
    "k": st.sampled_from(["c2VjcmV0", ""]),
}


def _mangled(value: Any) -> st.SearchStrategy[Any]:
    strategies: list[st.SearchStrategy[Any]] = [json_values]
    if isinstance(value, str) and value:
        strategies += [
            st.integers(1, len(value)).map(lambda n: value[:n]),
            st.text(max_size=4).map(lambda extra: value + extra),
            st.just("\u038f" + value),
            st.just(value.translate(str.maketrans("-_", "+/"))),
        ]
    return st.one_of(strategies)


@st.composite
def jwk_members(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    jwk = dict(_MATERIAL[draw(st.integers(0, len(_MATERIAL) - 1))])
    # Mostly well-formed kids from a small pool, so duplicates happen too.
    kid_kind = draw(st.integers(0, 9))
    if kid_kind < 8:
        jwk["kid"] = draw(st.sampled_from("abcdefgh"))
    else:
        jwk["kid"] = draw(st.sampled_from(["", "k" * 200, "tab\tkid", "\u00e9"]) | json_values)
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["edit", "drop", "mangle"]))
        if action == "edit":
            name = draw(st.sampled_from(sorted(_EDITS)))
            jwk[name] = draw(_EDITS[name])
        else:
            name = draw(st.sampled_from(sorted(jwk)))
            if action == "drop":
                del jwk[name]
            else:
                jwk[name] = draw(_mangled(jwk[name]))
    return jwk


key_set_documents = st.one_of(
    st.lists(jwk_members(), max_size=5).map(lambda keys: {"keys": keys}),
    st.lists(jwk_members(), max_size=3).map(lambda keys: {"keys": keys, "extra": 1}),
    json_values,
    st.fixed_dictionaries({"keys": json_values}),
)


# As in production, where warnings are not errors: under pytest's "error" filter,
# joserfc's SecurityWarning about RSA-1024 would itself refuse the key, hiding
# whether para_jwt's own size rule does.
production_warnings = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")


def _member(index: int, **changes: Any) -> dict[str, Any]:
    return {**_MATERIAL[index], "kid": "a", **changes}


# One of each kind of key that must never be usable, next to a good one.
HOSTILE_KEY_SETS = [
    {"keys": [ISSUER.public_jwk(), bad]}
    for bad in (
        _member(1),  # RSA private key
        _member(2),  # RSA-1024
        _member(4),  # EC private key
        _member(6),  # Ed25519 private key
        _member(7),  # X25519: not a signature curve
        _member(8),  # oct: symmetric
        _member(9),  # unknown kty
        _member(3, use="enc"),
        _member(3, key_ops=["sign"]),
        _member(3, key_ops="verify"),
        _member(0, alg="HS256"),
        _member(0, alg="ES256"),
        _member(0, alg=["RS256"]),
        _member(3, crv="secp256k1"),
        _member(3, crv="P-384"),
        _member(0, n="\u038f" + _MATERIAL[0]["n"]),
        _member(0, n=_MATERIAL[0]["n"][:100]),
        _member(0, e=1),
        _member(0, kid=ISSUER.current_kid),  # a second key under a published kid
        _member(0, kid="\u00e9"),
    )
]


@production_warnings
@budget(300)
@given(document=key_set_documents)
@_with_examples("document", HOSTILE_KEY_SETS)
def test_any_key_set_document_imports_safely(document: Any) -> None:
    # ValueError for a document that is not {"keys": [...]}, else a KeySet whose
    # usable keys are all public signature keys of a sound size (fuzz/targets.py).
    check_keyset(document)


@production_warnings
@pytest.mark.parametrize("document", HOSTILE_KEY_SETS)
def test_each_kind_of_hostile_key_is_skipped(document: dict[str, Any]) -> None:
    keyset = KeySet.from_jwks(document)
    assert "a" not in keyset.keys
    assert any(skip.kid == "a" for skip in keyset.skipped) or "a" not in {
        m.get("kid") for m in document["keys"]
    }
    # The good key survives its hostile neighbour (unless the neighbour stole its kid).
    stolen = document["keys"][1].get("kid") == ISSUER.current_kid
    assert set(keyset.keys) == (set() if stolen else {ISSUER.current_kid})


@production_warnings
def test_the_key_set_strategy_reaches_usable_and_skipped_keys() -> None:
    usable: set[bool] = set()

    @budget(200)
    @given(document=key_set_documents)
    def collect(document: Any) -> None:
        try:
            keyset = KeySet.from_jwks(document)
        except ValueError:
            return
        usable.add(bool(keyset.keys))
        usable.add(not keyset.skipped)

    collect()
    assert usable == {True, False}


@pytest.fixture
async def jwks_cache(para: MockPara, clock: FakeClock) -> AsyncIterator[JWKSCache]:
    async with JWKSCache(para.jwks_url, clock=clock, refresh_ahead=False) as cache:
        yield cache


def _is_key_set_shape(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("keys"), list)


@production_warnings
@budget(120, suppress_health_check=_SHARED_FIXTURES)
@given(document=key_set_documents)
@_with_examples("document", HOSTILE_KEY_SETS)
async def test_any_fetched_key_set_leaves_the_cache_sound(
    para: MockPara, jwks_cache: JWKSCache, document: Any
) -> None:
    # Served as JSON text (set_jwks would send a str verbatim, not as JSON).
    para.set_jwks(json.dumps(document).encode())
    try:
        keyset = await jwks_cache.refresh()
    except JWKSUnavailableError:
        assert not _is_key_set_shape(document)
    else:
        assert _is_key_set_shape(document)
        check_keyset(document)
        assert jwks_cache.health().kids == tuple(sorted(keyset.keys))
        for kid, key in keyset.keys.items():
            assert await jwks_cache.get_key(kid) is key
    # Whatever was served, a lookup of an unknown kid answers within the hierarchy.
    with pytest.raises((UnknownKeyError, JWKSUnavailableError)):
        await jwks_cache.get_key("never-published")


_STATE_URL = "https://api.getpara.com/.well-known/jwks.json"
_times = st.floats() | st.integers(-(2**64), 2**64) | json_values


@budget(200)
@given(fetched_at=_times, expires_at=_times, document=key_set_documents)
@example(fetched_at=math.nan, expires_at=1e308, document=ISSUER.jwks())
@example(fetched_at=NOW + 1e9, expires_at=NOW + 2e9, document=ISSUER.jwks())
@production_warnings
def test_any_exported_state_is_refused_or_bounded_by_max_ttl(
    fetched_at: Any, expires_at: Any, document: Any
) -> None:
    # initial_state comes from a store the service trusts, but its lifetime is
    # still ours to bound: at most max_ttl from now, and health() always answers.
    state = {"version": 1, "url": _STATE_URL, "jwks": document}
    state |= {"fetched_at": fetched_at, "expires_at": expires_at}
    try:
        cache = JWKSCache(_STATE_URL, initial_state=state, clock=lambda: NOW)
    except ConfigurationError:
        return
    health = cache.health()
    assert health.expires_at is not None
    assert health.expires_at.timestamp() <= NOW + 86_400
    check_keyset(document)
