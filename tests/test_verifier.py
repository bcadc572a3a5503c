"""``ParaVerifier``: construction, key-set hygiene, registered claims, the token cache."""

from __future__ import annotations

import operator
import re
import traceback
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokens import (
    ABSENT,
    API_KEY_ID,
    NOW,
    OTHER_API_KEY_ID,
    USER_ID,
    FakeClock,
    assert_rejected,
    b64url,
    b64url_decode_leniently,
    ec_key,
    ed25519_key,
    non_canonical,
    para_jwk,
    para_key,
    para_payload,
    pinned_verifier,
    rsa_key,
)

from para_jwt import (
    ConfigurationError,
    InvalidAudienceError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    JWKSCache,
    KeySet,
    MalformedTokenError,
    ParaVerifier,
    SkippedKey,
    SyncParaVerifier,
    TokenExpiredError,
    TokenNotYetValidError,
    UnknownKeyError,
)

PARA_JWKS = {"keys": [para_jwk()]}


async def test_a_para_token_verifies_as_str_and_bytes() -> None:
    verifier = pinned_verifier(token_cache_size=0)
    token = para_key().sign(para_payload())
    for form in (token, token.encode("ascii")):
        claims = await verifier.verify(form)
        assert claims.user_id == USER_ID
        assert claims.audience == API_KEY_ID


async def test_the_key_is_chosen_by_kid() -> None:
    second = rsa_key("para-second")
    verifier = pinned_verifier(para_jwk(), second.jwk(alg="RS256"))
    assert (await verifier.verify(second.sign(para_payload()))).key_id == second.kid
    assert (await verifier.verify(para_key().sign(para_payload()))).key_id == para_key().kid


# --- construction ----------------------------------------------------------------------


@pytest.mark.parametrize("api_key_id", ["", "   ", None, 123, b"8c67b747-1f0e-4e7a-9c43"])
def test_api_key_id_is_required(api_key_id: Any) -> None:
    with pytest.raises(ConfigurationError, match="api_key_id is required"):
        ParaVerifier(api_key_id, jwks=PARA_JWKS)


@pytest.mark.parametrize(
    "api_key",
    [
        "prod_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "beta_239a31fee5298dc110ee6a78e274b809",
        "sandbox_5e4d3c2b1a0918273645",
        "PROD_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "sk_live_7f6e5d4c3b2a19087f6e",
        "pk_7f6e5d4c3b2a19087f6e",
    ],
)
def test_an_api_key_as_api_key_id_is_refused_without_echoing_it(api_key: str) -> None:
    with pytest.raises(ConfigurationError, match=r"not its ID.*UUID") as info:
        ParaVerifier(api_key, jwks=PARA_JWKS)
    secret = api_key.partition("_")[2]
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


@pytest.mark.parametrize(
    "api_key_id",
    [
        "my-app",
        "8c67b747",
        "239a31fee5298dc110ee6a78e274b809",
        API_KEY_ID.replace("-", ""),
        "{" + API_KEY_ID + "}",
        "urn:uuid:" + API_KEY_ID,
        API_KEY_ID[:-1] + "g",
        " " + API_KEY_ID,
    ],
)
def test_api_key_id_must_be_a_uuid_in_its_usual_form(api_key_id: str) -> None:
    with pytest.raises(ConfigurationError, match="UUID"):
        ParaVerifier(api_key_id, jwks=PARA_JWKS)


async def test_api_key_id_is_compared_case_insensitively() -> None:
    verifier = ParaVerifier(API_KEY_ID.upper(), jwks=PARA_JWKS, clock=FakeClock())
    assert verifier.api_key_id == API_KEY_ID
    assert (await verifier.verify(para_key().sign(para_payload()))).audience == API_KEY_ID


@pytest.mark.parametrize(
    "sources",
    [
        {},
        {"environment": "prod", "jwks": PARA_JWKS},
        {"jwks_url": "https://keys.example/jwks.json", "jwks": PARA_JWKS},
        {"environment": "beta", "jwks_url": "https://keys.example/jwks.json"},
        {"environment": "prod", "jwks_url": "https://keys.example/jwks.json", "jwks": PARA_JWKS},
    ],
)
def test_exactly_one_key_source(sources: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="exactly one key source"):
        ParaVerifier(API_KEY_ID, **sources)


@pytest.mark.parametrize(
    ("sources", "says"),
    [
        ({"jwks_url": "http://api.getpara.com/.well-known/jwks.json"}, "non-loopback"),
        ({"jwks_url": "http://10.0.0.7/jwks.json"}, "non-loopback"),
        ({"jwks_url": "file:///etc/jwks.json"}, "https://"),
        ({"environment": "staging"}, "unknown Para environment"),
        ({"environment": "dev"}, "unknown Para environment"),
        ({"environment": 3}, "environment must be"),
    ],
)
def test_unsafe_or_unknown_key_sources_are_refused(sources: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        ParaVerifier(API_KEY_ID, **sources)


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": []},
        {"keys": [para_key().private_jwk()]},
        {"keys": [rsa_key("small", 1024).jwk()]},
        {"keys": [para_key().jwk(use="enc")]},
        {},
        {"keys": "para"},
        [para_jwk()],
    ],
)
def test_pinned_jwks_without_a_usable_key_is_refused(jwks: Any) -> None:
    with pytest.raises(ConfigurationError, match="jwks"):
        ParaVerifier(API_KEY_ID, jwks=jwks)


@pytest.mark.parametrize(
    "algorithms",
    [
        ["HS256"],
        ["none"],
        ["None"],
        [],
        (),
        ["RS256", "HS256"],
        ["rs256"],
        [None],
        None,
        [["RS256"]],
    ],
)
def test_unsafe_or_unknown_algorithms_are_refused(algorithms: Any) -> None:
    with pytest.raises(ConfigurationError, match="algorithm"):
        ParaVerifier(API_KEY_ID, jwks=PARA_JWKS, algorithms=algorithms)


@pytest.mark.parametrize("algorithms", ["RS256", b"RS256"])
def test_a_bare_algorithm_string_is_refused(algorithms: str | bytes) -> None:
    with pytest.raises(ConfigurationError, match="not a single string"):
        ParaVerifier(API_KEY_ID, jwks=PARA_JWKS, algorithms=algorithms)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("leeway", -1),
        ("leeway", 301),
        ("leeway", float("nan")),
        ("leeway", float("inf")),
        ("leeway", "5"),
        ("leeway", None),
        ("leeway", True),
        ("max_token_size", 0),
        ("max_token_size", 1023),
        ("max_token_size", 16384.0),
        ("max_token_size", "16384"),
        ("max_token_size", True),
        ("max_token_size", None),
        ("token_cache_size", -1),
        ("token_cache_size", 1.5),
        ("token_cache_size", "10"),
        ("token_cache_size", True),
        ("token_cache_size", None),
        ("clock", 1_750_000_000),
    ],
)
def test_bad_options_are_refused(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        ParaVerifier(API_KEY_ID, jwks=PARA_JWKS, **{option: value})


@pytest.mark.parametrize(
    "options",
    [
        {"leeway": 0},
        {"leeway": 300},
        {"leeway": 2.5},
        {"max_token_size": 1024},
        {"token_cache_size": 0},
        {"algorithms": ("RS256", "PS256")},
        {"algorithms": ["ES256", "EdDSA"]},
    ],
)
def test_sane_options_are_accepted(options: dict[str, Any]) -> None:
    assert ParaVerifier(API_KEY_ID, jwks=PARA_JWKS, **options).api_key_id == API_KEY_ID


# --- key-set hygiene ---------------------------------------------------------------------

OTHER = rsa_key("other")


def without(jwk: dict[str, Any], member: str) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name != member}


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        pytest.param("RSA", "not a JSON object", id="string"),
        pytest.param(None, "not a JSON object", id="null"),
        pytest.param([OTHER.jwk()], "not a JSON object", id="list"),
        pytest.param(OTHER.jwk(kty="XYZ"), "unsupported key type", id="unknown-kty"),
        pytest.param(without(OTHER.jwk(), "kty"), "no 'kty'", id="no-kty"),
        pytest.param(OTHER.jwk(kty=5), "no 'kty'", id="kty-int"),
        pytest.param(OTHER.jwk(use="enc"), "'use' is not 'sig'", id="use-enc"),
        pytest.param(OTHER.jwk(use=["sig"]), "'use' is not 'sig'", id="use-list"),
        pytest.param(OTHER.private_jwk(), "private key material", id="rsa-private"),
        pytest.param(ec_key().private_jwk(), "private key material", id="ec-private"),
        pytest.param(ed25519_key().private_jwk(), "private key material", id="okp-private"),
        pytest.param(
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "hmac"},
            "symmetric key",
            id="oct",
        ),
        pytest.param(rsa_key("small", 1024).jwk(), "RSA key of 1024 bits", id="rsa-1024"),
        pytest.param(without(OTHER.jwk(), "kid"), "no usable 'kid'", id="no-kid"),
        pytest.param(OTHER.jwk(kid=""), "no usable 'kid'", id="empty-kid"),
        pytest.param(OTHER.jwk(kid=7), "no usable 'kid'", id="kid-int"),
        pytest.param(OTHER.jwk(kid="has space"), "no usable 'kid'", id="kid-space"),
        pytest.param(OTHER.jwk(kid="k" * 129), "no usable 'kid'", id="kid-long"),
        pytest.param(OTHER.jwk(key_ops=["encrypt"]), "'key_ops'", id="key-ops-encrypt"),
        pytest.param(OTHER.jwk(key_ops=[]), "'key_ops'", id="key-ops-empty"),
        pytest.param(OTHER.jwk(key_ops="verify"), "'key_ops'", id="key-ops-string"),
        pytest.param(OTHER.jwk(alg="ES256"), "'alg' does not fit", id="rsa-alg-es256"),
        pytest.param(OTHER.jwk(alg="HS256"), "'alg' does not fit", id="rsa-alg-hs256"),
        pytest.param(OTHER.jwk(alg="none"), "'alg' does not fit", id="rsa-alg-none"),
        pytest.param(ec_key().jwk(alg="RS256"), "'alg' does not fit", id="ec-alg-rs256"),
        pytest.param(ec_key().jwk(alg="ES384"), "'alg' does not fit", id="p256-alg-es384"),
        pytest.param(OTHER.jwk(alg=256), "'alg' does not fit", id="alg-int"),
        pytest.param(OTHER.jwk(alg=["RS256"]), "'alg' does not fit", id="alg-list"),
        pytest.param(OTHER.jwk(alg={"name": "RS256"}), "'alg' does not fit", id="alg-object"),
        pytest.param(ec_key().jwk(crv="secp256k1"), "not a signature curve", id="secp256k1"),
        pytest.param(without(ec_key().jwk(), "crv"), "not a signature curve", id="no-crv"),
        pytest.param(ed25519_key().jwk(crv="X25519"), "not a signature curve", id="x25519"),
        pytest.param(OTHER.jwk(n=5), "malformed RSA key", id="n-int"),
        pytest.param(OTHER.jwk(n="\u00e9" * 400), "malformed RSA key", id="n-non-ascii"),
        pytest.param(OTHER.jwk(e="AQ"), "public exponent", id="e-1"),
        pytest.param(without(OTHER.jwk(), "e"), "malformed RSA key", id="no-e"),
        pytest.param(ec_key().jwk(x="AAAA"), "malformed key parameters", id="ec-off-curve"),
    ],
)
def test_a_bad_key_is_skipped_with_a_reason_and_never_breaks_the_set(
    member: Any, reason: str
) -> None:
    keyset = KeySet.from_jwks({"keys": [member, para_jwk()]})
    assert set(keyset.keys) == {para_key().kid}
    [skipped] = keyset.skipped
    assert reason in skipped.reason
    kid = member.get("kid") if isinstance(member, dict) else None
    assert skipped.kid == (kid if isinstance(kid, str) else None)
    if skipped.kid is not None:
        with pytest.raises(UnknownKeyError, match="unusable"):
            keyset.key(skipped.kid)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
JWK_MEMBERS = ["kty", "kid", "alg", "use", "key_ops", "crv", "n", "e", "x", "y", "d", "k"]


@pytest.mark.slow  # 300 key sets, 13 s; make test: tests/test_properties.py's key-set property
@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([OTHER.jwk(), ec_key().jwk(), ed25519_key().jwk()]),
    changes=st.dictionaries(st.sampled_from(JWK_MEMBERS), JSON_VALUES, max_size=3),
    stranger=JSON_VALUES,
)
def test_no_member_breaks_the_set(
    base: dict[str, Any], changes: dict[str, Any], stranger: Any
) -> None:
    keyset = KeySet.from_jwks({"keys": [base | changes, stranger, para_jwk()]})
    assert keyset.key(para_key().kid).kid == para_key().kid


def test_good_keys_of_every_supported_type_are_kept() -> None:
    members = [para_jwk(), OTHER.jwk(), ec_key().jwk(use="sig"), ed25519_key().jwk(alg="EdDSA")]
    keyset = KeySet.from_jwks({"keys": members})
    assert keyset.skipped == ()
    assert keyset.key(para_key().kid).algorithms == {"RS256"}
    assert keyset.key(OTHER.kid).algorithms == {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
    }
    assert keyset.key(ec_key().kid).algorithms == {"ES256"}
    assert keyset.key(ed25519_key().kid).algorithms == {"EdDSA"}


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([para_jwk(), OTHER.jwk(kid=para_key().kid)], id="impostor-second"),
        pytest.param([OTHER.jwk(kid=para_key().kid), para_jwk()], id="impostor-first"),
        pytest.param([para_jwk(), para_jwk()], id="identical"),
        pytest.param([para_jwk(), para_jwk(), para_jwk()], id="three-times"),
        pytest.param([para_key().jwk(use="enc"), para_jwk()], id="first-one-skipped"),
    ],
)
def test_a_duplicated_kid_makes_that_kid_unusable(members: list[dict[str, Any]]) -> None:
    keyset = KeySet.from_jwks({"keys": [*members, ec_key().jwk()]})
    with pytest.raises(UnknownKeyError, match="unusable"):
        keyset.key(para_key().kid)
    assert set(keyset.keys) == {ec_key().kid}
    assert SkippedKey(para_key().kid, "the kid is published more than once") in keyset.skipped


def test_only_the_first_64_keys_are_read() -> None:
    members = [para_key().jwk(kid=f"key-{index}") for index in range(65)]
    keyset = KeySet.from_jwks({"keys": members})
    assert len(keyset.keys) == 64
    assert keyset.skipped == (SkippedKey("key-64", "beyond the first 64 keys"),)


@pytest.mark.parametrize(
    "document", [[], "keys", None, 5, {}, {"keys": {}}, {"keys": None}, {"keys": "k"}]
)
def test_a_document_that_is_not_a_key_set_is_a_value_error(document: Any) -> None:
    with pytest.raises(ValueError, match="'keys' list"):
        KeySet.from_jwks(document)


def test_an_unknown_kid_is_an_unknown_key() -> None:
    with pytest.raises(UnknownKeyError, match="names no key"):
        KeySet.from_jwks(PARA_JWKS).key(OTHER.kid)


# --- the token itself: type and size -------------------------------------------------------


@pytest.mark.parametrize("token_cache_size", [4096, 0])
@pytest.mark.parametrize(
    "make_token",
    [
        lambda t: None,
        lambda t: 42,
        lambda t: [t],
        lambda t: {"token": t},
        lambda t: bytearray(t.encode()),
        lambda t: memoryview(t.encode()),
    ],
    ids=["none", "int", "list", "dict", "bytearray", "memoryview"],
)
async def test_only_str_and_bytes_tokens(make_token: Any, token_cache_size: int) -> None:
    verifier = pinned_verifier(token_cache_size=token_cache_size)
    token = make_token(para_key().sign(para_payload()))
    await assert_rejected(verifier, token, MalformedTokenError, "must be str or bytes")


async def test_tokens_over_16_kib_are_refused_by_default_even_if_genuine() -> None:
    big = para_key().sign(para_payload(filler="x" * 16 * 1024))
    assert len(big) > 16 * 1024
    await assert_rejected(pinned_verifier(), big, MalformedTokenError, "larger than 16384")
    await assert_rejected(pinned_verifier(), big.encode(), MalformedTokenError, "larger than")
    accepted = await pinned_verifier(max_token_size=len(big)).verify(big)
    assert accepted.payload["filler"] == "x" * 16 * 1024


async def test_max_token_size_is_inclusive() -> None:
    token = para_key().sign(para_payload(filler="x" * 500))
    assert (await pinned_verifier(max_token_size=len(token)).verify(token)).user_id == USER_ID
    verifier = pinned_verifier(max_token_size=len(token) - 1)
    await assert_rejected(verifier, token, MalformedTokenError, "larger than")


# --- aud -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "says"),
    [
        (OTHER_API_KEY_ID, "another application"),
        ("prod_0f1e2d3c4b5a69788796a5b4c3d2e1f0", "another application"),
        (ABSENT, "no 'aud'"),
        (None, "no 'aud'"),
        ("", "another application"),
        ([], "another application"),
        ([OTHER_API_KEY_ID, "prod_0f1e2d3c"], "another application"),
        ([[API_KEY_ID]], "another application"),
        (123, "another application"),
        ({"id": API_KEY_ID}, "another application"),
        (True, "another application"),
        (API_KEY_ID + " ", "another application"),
        (API_KEY_ID.replace("-", ""), "another application"),
        ("{" + API_KEY_ID + "}", "another application"),
        ("urn:uuid:" + API_KEY_ID, "another application"),
    ],
)
async def test_aud_must_name_this_application(aud: Any, says: str) -> None:
    token = para_key().sign(para_payload(aud))
    await assert_rejected(pinned_verifier(), token, InvalidAudienceError, says)


@pytest.mark.parametrize(
    "aud",
    [API_KEY_ID, API_KEY_ID.upper(), [API_KEY_ID], [OTHER_API_KEY_ID, 7, API_KEY_ID.upper()]],
)
async def test_aud_matches_as_a_string_or_in_a_list_ignoring_case(aud: Any) -> None:
    claims = await pinned_verifier().verify(para_key().sign(para_payload(aud)))
    assert claims.audience == API_KEY_ID  # always the configured ID, as documented


# --- exp, nbf, iat -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exp", "error", "says"),
    [
        (ABSENT, InvalidClaimsError, "no 'exp'"),
        (None, InvalidClaimsError, "no 'exp'"),
        ("9999999999", InvalidClaimsError, "NumericDate"),
        (True, InvalidClaimsError, "NumericDate"),
        (False, InvalidClaimsError, "NumericDate"),
        ([NOW + 1800], InvalidClaimsError, "NumericDate"),
        ({"seconds": NOW + 1800}, InvalidClaimsError, "NumericDate"),
        (1e300, InvalidClaimsError, "NumericDate"),
        pytest.param(10**400, InvalidClaimsError, "NumericDate", id="10**400"),
        (253_402_300_800, InvalidClaimsError, "NumericDate"),
        (-1, InvalidClaimsError, "NumericDate"),
        (NOW, TokenExpiredError, "expired"),
        (NOW - 0.5, TokenExpiredError, "expired"),
        (0, TokenExpiredError, "expired"),
    ],
)
async def test_exp_is_required_numeric_and_in_the_future(
    exp: Any, error: type[InvalidTokenError], says: str
) -> None:
    token = para_key().sign(para_payload(exp=exp, iat=ABSENT))
    await assert_rejected(pinned_verifier(), token, error, says)


async def test_exp_from_an_infinite_literal_is_refused() -> None:
    raw = b'{"data":{"userId":"u"},"sub":"u","aud":"' + API_KEY_ID.encode() + b'","exp":1e400}'
    token = para_key().sign(raw)
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, "NumericDate")


@pytest.mark.parametrize(
    ("leeway", "seconds_after_exp", "accepted"),
    [
        (0, -1, True),
        (0, -0.001, True),
        (0, 0, False),
        (0, 1, False),
        (30, 29.999, True),
        (30, 30, False),
    ],
)
async def test_expiry_boundary_and_leeway(
    leeway: float, seconds_after_exp: float, accepted: bool
) -> None:
    exp = NOW + 1800
    clock = FakeClock(exp + seconds_after_exp)
    verifier = pinned_verifier(clock=clock, leeway=leeway)
    token = para_key().sign(para_payload(exp=exp))
    if accepted:
        assert (await verifier.verify(token)).expires_at.timestamp() == exp
    else:
        await assert_rejected(verifier, token, TokenExpiredError, "expired")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
@pytest.mark.parametrize(
    ("leeway", "seconds_ahead", "accepted"),
    [(0, 0, True), (0, 1, False), (0, 0.001, False), (30, 30, True), (30, 31, False)],
)
async def test_nbf_and_iat_in_the_future_beyond_leeway_are_refused(
    claim: str, leeway: float, seconds_ahead: float, accepted: bool
) -> None:
    token = para_key().sign(para_payload(**{claim: NOW + seconds_ahead}))
    verifier = pinned_verifier(leeway=leeway)
    if accepted:
        assert (await verifier.verify(token)).payload[claim] == NOW + seconds_ahead
    else:
        await assert_rejected(verifier, token, TokenNotYetValidError, f"'{claim}'")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
@pytest.mark.parametrize(
    "value", ["soon", True, [NOW], {"t": NOW}, -5, 1e300, pytest.param(10**400, id="10**400")]
)
async def test_nbf_and_iat_must_be_numeric_dates(claim: str, value: Any) -> None:
    token = para_key().sign(para_payload(**{claim: value}))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, f"'{claim}' must be")


@pytest.mark.parametrize("sub", [123, ["sub"], {"id": USER_ID}, True])
async def test_sub_must_be_a_string(sub: Any) -> None:
    token = para_key().sign(para_payload(sub=sub))
    await assert_rejected(pinned_verifier(), token, InvalidClaimsError, "'sub' must be a string")


# --- the verified-token cache ------------------------------------------------------------------


async def test_a_repeated_token_is_served_from_the_cache() -> None:
    verifier = pinned_verifier()
    token = para_key().sign(para_payload())
    assert await verifier.verify(token) is await verifier.verify(token)


async def test_token_cache_size_0_disables_the_cache() -> None:
    verifier = pinned_verifier(token_cache_size=0)
    token = para_key().sign(para_payload())
    first, second = await verifier.verify(token), await verifier.verify(token)
    assert first is not second
    assert first == second


@pytest.mark.parametrize("seconds_past_exp", [0, 0.5, 10**6])
async def test_a_cache_hit_after_expiry_is_expired(seconds_past_exp: float) -> None:
    clock = FakeClock()
    verifier = pinned_verifier(clock=clock)
    token = para_key().sign(para_payload(exp=NOW + 1800))
    claims = await verifier.verify(token)
    clock.now = NOW + 1799
    assert await verifier.verify(token) is claims
    clock.now = NOW + 1800 + seconds_past_exp
    await assert_rejected(verifier, token, TokenExpiredError)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_a_cache_hit_rechecks_nbf_and_iat(claim: str) -> None:
    clock = FakeClock()
    verifier = pinned_verifier(clock=clock)
    token = para_key().sign(para_payload(**{claim: NOW}))
    await verifier.verify(token)
    clock.now -= 1  # the host's clock was stepped back
    await assert_rejected(verifier, token, TokenNotYetValidError, f"'{claim}'")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda payload: operator.setitem(payload, "exp", NOW + 10**8),
        lambda payload: operator.delitem(payload, "exp"),
        lambda payload: operator.setitem(payload["data"], "userId", "someone-else"),
    ],
    ids=["exp-extended", "exp-removed", "data-changed"],
)
async def test_the_returned_payload_is_read_only(tamper: Any) -> None:
    clock = FakeClock()
    verifier = pinned_verifier(clock=clock)
    token = para_key().sign(para_payload())
    claims = await verifier.verify(token)
    with pytest.raises(TypeError):
        tamper(claims.payload)
    assert (await verifier.verify(token)).payload == claims.payload.copy()
    clock.advance(1800)
    await assert_rejected(verifier, token, TokenExpiredError)


async def test_a_tampered_token_never_hits_the_cache() -> None:
    verifier = pinned_verifier()
    token = para_key().sign(para_payload())
    await verifier.verify(token)
    signing_input, _, signature = token.rpartition(".")
    other_signature = para_key().sign(para_payload(iat=NOW - 1)).rpartition(".")[2]
    truncated = b64url(b64url_decode_leniently(signature)[:-1])
    for forged in (other_signature, truncated):
        await assert_rejected(verifier, f"{signing_input}.{forged}", InvalidSignatureError)
    for variant in (f"{signing_input}.{non_canonical(signature)}", token + "\n", " " + token):
        await assert_rejected(verifier, variant, MalformedTokenError)


async def test_the_cache_forgets_tokens_beyond_its_size() -> None:
    verifier = pinned_verifier(token_cache_size=1)
    first = para_key().sign(para_payload())
    second = para_key().sign(para_payload(iat=NOW - 1))
    claims = await verifier.verify(first)
    await verifier.verify(second)
    assert await verifier.verify(first) is not claims


# --- configuration errors name the class and the option, never a value ----------------

SECRET = "sk_live_0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("cls", [ParaVerifier, SyncParaVerifier])
@pytest.mark.parametrize(
    ("misspelled", "meant"),
    [("max_stael", "max_stale"), ("leway", "leeway"), ("refetch_budjet", "refetch_budget")],
)
def test_a_misspelled_option_names_the_class_and_the_nearest_option(
    cls: type[Any], misspelled: str, meant: str
) -> None:
    says = f"{cls.__name__} has no option {misspelled}=: did you mean {meant}=?"
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        cls(API_KEY_ID, environment="prod", **{misspelled: 1})
    with pytest.raises(ConfigurationError, match=f"{cls.__name__} has no option zzz=: it takes "):
        cls(API_KEY_ID, environment="prod", zzz=1)


@pytest.mark.parametrize("cls", [ParaVerifier, SyncParaVerifier])
@pytest.mark.parametrize(
    "options",
    [
        {"environment": SECRET},
        {"environment": "prod", "algorithms": [SECRET]},
        {"environment": "prod", "algorithms": SECRET},
        {"environment": "prod", "timeout": SECRET},
        {"environment": "prod", "leeway": SECRET},
        {"jwks_url": SECRET},
        {"environment": "prod", "jwks": {"keys": [SECRET]}},
    ],
)
def test_configuration_errors_never_quote_a_value(cls: type[Any], options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        cls(API_KEY_ID, **options)
    message = str(caught.value)
    assert message.startswith(f"{cls.__name__}")
    assert "sk_live" not in message
    assert "0123456789abcdef" not in message


async def test_a_ready_jwks_cache_is_borrowed() -> None:
    cache = JWKSCache("https://example.com/.well-known/jwks.json")
    verifier = ParaVerifier(API_KEY_ID, jwks_cache=cache)
    assert verifier.jwks is cache
    await verifier.close()
    assert not cache._closed  # still the owner's to close
    await cache.close()
    with pytest.raises(ConfigurationError, match="no effect with jwks= or jwks_cache="):
        ParaVerifier(API_KEY_ID, jwks_cache=cache, max_stale=10)
    with pytest.raises(ConfigurationError, match="exactly one key source"):
        ParaVerifier(API_KEY_ID, jwks_cache=cache, environment="prod")


async def test_a_bearer_prefix_is_named() -> None:
    token = para_key().sign(para_payload())
    bearer = "Bearer " + token
    await assert_rejected(pinned_verifier(), bearer, MalformedTokenError, "strip the scheme")


# --- no token in any exception verify() raises -------------------------------------------


def token_pieces(token: str) -> list[str | bytes]:
    segments = token.split(".")
    return [token, token.encode(), *segments, *(s.encode() for s in segments)]


def assert_token_unreachable(error: BaseException, token: str) -> None:
    pieces = token_pieces(token)
    rendered = "".join(
        traceback.TracebackException(
            type(error), error, error.__traceback__, capture_locals=True
        ).format()
    )
    assert not any(isinstance(p, str) and p in rendered for p in pieces)
    chained: BaseException | None = error
    while chained is not None:
        assert not any(isinstance(p, str) and p in repr(chained.args) for p in pieces)
        assert not any(v in pieces for v in vars(chained).values() if isinstance(v, str | bytes))
        tb = chained.__traceback__
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                assert not (isinstance(value, str | bytes) and value in pieces)
            tb = tb.tb_next
        chained = chained.__cause__ or chained.__context__


async def error_of(verifier: ParaVerifier, token: str | bytes) -> BaseException:
    """What verify raises, with this frame (which holds the token) cut off."""
    try:
        await verifier.verify(token)
    except BaseException as exc:  # returned for inspection
        tb = exc.__traceback__
        return exc.with_traceback(None if tb is None else tb.tb_next)
    raise AssertionError("verify accepted the token")


@pytest.mark.parametrize(
    "make",
    [
        lambda: para_key().sign(para_payload(exp=NOW - 10)),
        lambda: para_key().sign(para_payload(aud=OTHER_API_KEY_ID)),
        lambda: para_key().sign(para_payload()).rpartition(".")[0] + ".AAAA",
        lambda: rsa_key("unknown").sign(para_payload()),
        lambda: para_key().sign(para_payload()).replace(".", ".{", 1),
        lambda: "e30." + b64url(b'{"a":1,"a":2}') + ".AAAA",
        lambda: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
    ],
    ids=["expired", "audience", "signature", "kid", "base64", "duplicate", "json"],
)
async def test_no_token_is_reachable_from_a_verify_error(make: Any) -> None:
    token = make()
    verifier = pinned_verifier(clock=FakeClock(NOW))
    for form in (token, token.encode()):
        error = await error_of(verifier, form)
        assert isinstance(error, InvalidTokenError)
        assert_token_unreachable(error, token)
