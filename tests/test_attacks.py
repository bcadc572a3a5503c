"""Attacker-made tokens, end to end through ``ParaVerifier.verify``.

Wherever the attack allows it, the token carries a genuine signature (by Para's
key, or by the key the attack smuggles in), so the rule under test is the only
thing between it and acceptance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokens import (
    API_KEY_ID,
    OTHER_API_KEY_ID,
    USER_ID,
    TestKey,
    assert_no_token_leak,
    assert_rejected,
    b64url,
    b64url_decode_leniently,
    ec_key,
    ed25519_key,
    forge,
    json_bytes,
    non_canonical,
    para_jwk,
    para_key,
    para_payload,
    pinned_verifier,
    rsa_key,
    with_data,
    with_padding,
)

from para_jwt import (
    InvalidSignatureError,
    InvalidTokenError,
    MalformedTokenError,
    UnknownKeyError,
    UnsupportedAlgorithmError,
)

PARA = para_key()
ATTACKER = rsa_key("attacker")
#: The order of P-256: an ECDSA (r, s) must lie in [1, n - 1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def para_header(**members: Any) -> dict[str, Any]:
    return {"alg": "RS256", "typ": "JWT", "kid": PARA.kid, **members}


def segments(token: str) -> list[str]:
    return token.split(".")


# --- algorithm attacks ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"\x00", bytes(256)], ids=["empty", "1-byte", "256"])
async def test_alg_none_is_refused(alg: str, signature: bytes) -> None:
    token = forge(para_header(alg=alg), para_payload(), signature=signature)
    await assert_rejected(pinned_verifier(), token, UnsupportedAlgorithmError, "is not accepted")


def public_key_bytes(key: TestKey, form: str) -> bytes:
    if form == "jwk":
        return json.dumps(key.jwk(alg="RS256", use="sig")).encode()
    public: bytes = (
        key.private.as_pem(private=False) if form == "pem" else key.private.as_der(private=False)
    )
    return public


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("form", ["pem", "der", "jwk"])
async def test_hmac_signed_with_the_public_key_is_refused(alg: str, form: str) -> None:
    # The classic algorithm confusion: a verifier that feeds Para's public key to
    # HMAC accepts anything signed with that (public) secret.
    token = forge(para_header(alg=alg), para_payload(), key=public_key_bytes(PARA, form))
    verifier = pinned_verifier(algorithms=["RS256", "PS256", "ES256", "EdDSA"])
    await assert_rejected(verifier, token, UnsupportedAlgorithmError, f"'{alg}' is not accepted")


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (rsa_key("other"), "RS384"),
        (rsa_key("other"), "RS512"),
        (rsa_key("other"), "PS256"),
        (ec_key(), "ES256"),
        (ed25519_key(), "EdDSA"),
    ],
)
async def test_algorithms_not_allowed_are_refused_though_the_signature_is_genuine(
    key: TestKey, alg: str
) -> None:
    # The published key names no 'alg', so only the verifier's allow-list refuses.
    token = key.sign(para_payload(), alg=alg)
    allowed = pinned_verifier(key.jwk(), algorithms=[alg])
    assert (await allowed.verify(token)).key_id == key.kid
    await assert_rejected(pinned_verifier(key.jwk()), token, UnsupportedAlgorithmError)


# --- keys the token chooses ---------------------------------------------------------------


@pytest.mark.parametrize("kid", [ATTACKER.kid, PARA.kid], ids=["attacker-kid", "para-kid"])
async def test_an_embedded_jwk_is_refused_though_it_verifies_the_token(kid: str) -> None:
    # CVE-2018-0114: the token brings the key it is signed with.
    token = forge(para_header(kid=kid, jwk=ATTACKER.jwk()), para_payload(), key=ATTACKER)
    await assert_rejected(pinned_verifier(), token, MalformedTokenError, "carries 'jwk'")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("jku", "https://attacker.example/jwks.json", "carries 'jku'"),
        ("x5u", "https://attacker.example/key.pem", "carries 'x5u'"),
        ("x5c", ["MIIBCgKCAQEA"], "carries 'x5c'"),
        ("crit", ["exp"], "'crit'"),
        ("typ", "at+jwt", "'typ'"),
        ("typ", "JOSE", "'typ'"),
        ("typ", 5, "'typ'"),
    ],
)
async def test_forbidden_header_parameters_are_refused_on_genuine_tokens(
    name: str, value: Any, says: str
) -> None:
    token = PARA.sign(para_payload(), **{name: value})
    await assert_rejected(pinned_verifier(), token, MalformedTokenError, says)


# --- key confusion through kid -------------------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "alg", "published", "algorithms"),
    [
        pytest.param(PARA, "RS256", ec_key().jwk(), ["RS256"], id="rs256-kid-of-ec-key"),
        pytest.param(PARA, "RS256", ed25519_key().jwk(), ["RS256"], id="rs256-kid-of-okp-key"),
        pytest.param(PARA, "RS256", PARA.jwk(alg="RS384"), ["RS256"], id="key-for-rs384"),
        pytest.param(PARA, "PS256", para_jwk(), ["RS256", "PS256"], id="ps256-on-rs256-key"),
        pytest.param(
            ec_key("P-384"), "ES256", ec_key("P-384").jwk(), ["ES256"], id="es256-kid-of-p384"
        ),
        pytest.param(ec_key(), "ES384", ec_key().jwk(), ["ES256", "ES384"], id="es384-kid-of-p256"),
    ],
)
async def test_the_named_key_must_fit_the_algorithm(
    signer: TestKey, alg: str, published: dict[str, Any], algorithms: list[str]
) -> None:
    token = forge(para_header(alg=alg, kid=published["kid"]), para_payload(), key=signer)
    verifier = pinned_verifier(published, algorithms=algorithms)
    await assert_rejected(verifier, token, UnsupportedAlgorithmError, f"not for {alg}")


async def test_a_kid_outside_the_key_set_is_unknown() -> None:
    await assert_rejected(
        pinned_verifier(), ATTACKER.sign(para_payload()), UnknownKeyError, "names no key"
    )


# --- forged and mangled signatures ----------------------------------------------------------


def replace_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = segments(token)
    return f"{header}.{b64url(json_bytes(payload))}.{signature}"


def replace_signature(token: str, change: Callable[[bytes], bytes]) -> str:
    signing_input, _, signature = token.rpartition(".")
    return f"{signing_input}.{b64url(change(b64url_decode_leniently(signature)))}"


def flip_bit(position: int) -> Callable[[bytes], bytes]:
    def flip(signature: bytes) -> bytes:
        changed = bytearray(signature)
        changed[position] ^= 0x01
        return bytes(changed)

    return flip


GENUINE = PARA.sign(para_payload())
ANOTHER_USER = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(
            replace_payload(GENUINE, with_data(userId=ANOTHER_USER) | {"sub": ANOTHER_USER}),
            id="payload-other-user",
        ),
        pytest.param(
            replace_payload(
                GENUINE, with_data(wallets=[{"id": "w", "type": "EVM", "address": "0x1"}])
            ),
            id="payload-other-wallet",
        ),
        pytest.param(
            replace_payload(GENUINE, para_payload(exp=para_payload()["exp"] + 86_400)),
            id="payload-longer-life",
        ),
        pytest.param(
            forge(
                para_header(typ="jwt"),
                para_payload(),
                signature=b64url_decode_leniently(segments(GENUINE)[2]),
            ),
            id="header-changed",
        ),
        pytest.param(replace_signature(GENUINE, flip_bit(0)), id="first-bit"),
        pytest.param(replace_signature(GENUINE, flip_bit(128)), id="middle-bit"),
        pytest.param(replace_signature(GENUINE, flip_bit(255)), id="last-bit"),
        pytest.param(replace_signature(GENUINE, lambda s: s[:-1]), id="truncated-1"),
        pytest.param(replace_signature(GENUINE, lambda s: s[:128]), id="truncated-half"),
        pytest.param(replace_signature(GENUINE, lambda s: s[:1]), id="truncated-to-1"),
        pytest.param(replace_signature(GENUINE, lambda s: s + b"\x00"), id="extended"),
        pytest.param(replace_signature(GENUINE, lambda s: b"\x00" + s[:-1]), id="shifted"),
        pytest.param(replace_signature(GENUINE, lambda s: bytes(256)), id="zero"),
        pytest.param(replace_signature(GENUINE, lambda s: (1).to_bytes(256, "big")), id="one"),
        pytest.param(
            replace_signature(GENUINE, lambda s: b64url_decode_leniently(PARA.jwk()["n"])),
            id="modulus",
        ),
        pytest.param(ATTACKER.sign(para_payload(), kid=PARA.kid), id="attacker-key-para-kid"),
        pytest.param(
            replace_payload(PARA.sign(para_payload(sub=ANOTHER_USER)), para_payload()),
            id="signature-of-another-token",
        ),
    ],
)
async def test_forged_signatures_are_refused(forged: str) -> None:
    await assert_rejected(pinned_verifier(), forged, InvalidSignatureError)


@pytest.mark.parametrize(
    ("reorder", "says"),
    [
        (lambda h, p, s: f"{p}.{h}.{s}", "'alg'"),
        (lambda h, p, s: f"{h}.{s}.{p}", "payload"),
        (lambda h, p, s: f"{s}.{p}.{h}", "header"),
        (lambda h, p, s: f"{h}.{p}.", "signature is empty"),
        (lambda h, p, s: f"{h}.{p}", "3 dot-separated segments"),
    ],
)
async def test_swapped_or_missing_segments_are_malformed(
    reorder: Callable[[str, str, str], str], says: str
) -> None:
    await assert_rejected(pinned_verifier(), reorder(*segments(GENUINE)), MalformedTokenError, says)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(bytes(64), id="r=s=0"),
        pytest.param(P256_ORDER.to_bytes(32, "big") * 2, id="r=s=n"),
        pytest.param(bytes(32) + (1).to_bytes(32, "big"), id="r=0,s=1"),
        pytest.param((1).to_bytes(32, "big") * 2, id="r=s=1"),
        pytest.param(b"\xff" * 64, id="r=s=max"),
    ],
)
async def test_psychic_ecdsa_signatures_are_refused(signature: bytes) -> None:
    # CVE-2022-21449: Java accepted r = s = 0 for any message and key.
    key = ec_key()
    token = forge(para_header(alg="ES256", kid=key.kid), para_payload(), signature=signature)
    verifier = pinned_verifier(key.jwk(), algorithms=["ES256"])
    assert (await verifier.verify(key.sign(para_payload(), alg="ES256"))).key_id == key.kid
    await assert_rejected(verifier, token, InvalidSignatureError)


@pytest.mark.parametrize("signature", [bytes(64), b"\x01" + bytes(63), bytes(32)])
async def test_degenerate_eddsa_signatures_are_refused(signature: bytes) -> None:
    key = ed25519_key()
    token = forge(para_header(alg="EdDSA", kid=key.kid), para_payload(), signature=signature)
    await assert_rejected(
        pinned_verifier(key.jwk(), algorithms=["EdDSA"]), token, InvalidSignatureError
    )


# --- malleable encodings of genuine tokens ----------------------------------------------------

NOTE = "?????~~~~~"  # encodes to both '-' and '_'


def genuine_token(header_remainder: int, payload_remainder: int) -> str:
    """A Para-signed token whose header and payload base64url leave unused bits."""
    header = with_padding(json_bytes(para_header()), header_remainder)
    payload = with_padding(json_bytes(para_payload(note=NOTE)), payload_remainder)
    return forge(header, payload, key=PARA, alg="RS256")


def at_segment(index: int, change: Callable[[str], str]) -> Callable[[str], str]:
    def apply(token: str) -> str:
        parts = segments(token)
        parts[index] = change(parts[index])
        return ".".join(parts)

    return apply


MALLEATIONS = {
    "non-canonical-header": at_segment(0, non_canonical),
    "non-canonical-payload": at_segment(1, non_canonical),
    "non-canonical-signature": at_segment(2, non_canonical),
    "padded-header": at_segment(0, lambda s: s + "=" * (-len(s) % 4)),
    "padded-signature": at_segment(2, lambda s: s + "=="),
    "standard-alphabet-payload": at_segment(1, lambda s: s.replace("-", "+").replace("_", "/")),
    "newline-in-signature": at_segment(2, lambda s: s[:64] + "\n" + s[64:]),
    "space-in-payload": at_segment(1, lambda s: s[:8] + " " + s[8:]),
    "trailing-newline": lambda t: t + "\n",
    "trailing-crlf": lambda t: t + "\r\n",
    "leading-space": lambda t: " " + t,
}


@pytest.mark.parametrize("malleate", MALLEATIONS.values(), ids=MALLEATIONS.keys())
@pytest.mark.parametrize("remainders", [(1, 2), (2, 1)], ids=["4-2-bits", "2-4-bits"])
async def test_other_encodings_of_a_genuine_token_are_refused(
    malleate: Callable[[str], str], remainders: tuple[int, int]
) -> None:
    token = genuine_token(*remainders)
    verifier = pinned_verifier(token_cache_size=0)
    await verifier.verify(token)
    variant = malleate(token)
    # A forgiving parser reads the very same bytes, so the signature would verify.
    assert variant != token
    assert [b64url_decode_leniently(s) for s in segments(variant)] == [
        b64url_decode_leniently(s) for s in segments(token)
    ]
    await assert_rejected(verifier, variant, MalformedTokenError, "base64url")


# --- JSON that parsers read differently, under genuine signatures ------------------------------


def payload_text(**replacements: str) -> bytes:
    text = json.dumps(para_payload(), separators=(",", ":"))
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new, 1)
    return text.encode()


AUD = f'"aud":"{API_KEY_ID}"'
USER = f'"userId":"{USER_ID}"'


@pytest.mark.parametrize(
    ("header", "payload", "says"),
    [
        pytest.param(
            para_header(),
            payload_text(**{AUD: f'"aud":"{OTHER_API_KEY_ID}",{AUD}'}),
            "duplicate member name",
            id="duplicate-aud",
        ),
        pytest.param(
            para_header(),
            payload_text(**{USER: f'"userId":"{OTHER_API_KEY_ID}",{USER}'}),
            "duplicate member name",
            id="duplicate-nested-user-id",
        ),
        pytest.param(
            json.dumps(para_header())[:-1] + ',"alg":"RS256"}',
            payload_text(),
            "duplicate member name",
            id="duplicate-alg",
        ),
        pytest.param(para_header(), payload_text(**{AUD: f'{AUD},"score":NaN'}), "NaN", id="nan"),
        pytest.param(
            para_header(),
            payload_text(**{AUD: f'{AUD},"limit":Infinity'}),
            "Infinity",
            id="infinity",
        ),
        pytest.param(
            para_header(),
            json.dumps(para_payload()).encode("utf-16"),
            "not UTF-8 JSON",
            id="utf-16-payload",
        ),
        pytest.param(
            para_header(),
            b"\xef\xbb\xbf" + payload_text(),
            "not UTF-8 JSON",
            id="bom-payload",
        ),
        pytest.param(
            json.dumps(para_header()).encode("utf-16-le"),
            payload_text(),
            "not UTF-8 JSON",
            id="utf-16-header",
        ),
    ],
)
async def test_ambiguous_json_is_refused_though_signed(
    header: dict[str, Any] | str | bytes, payload: bytes, says: str
) -> None:
    token = forge(header, payload, key=PARA, alg="RS256")
    await assert_rejected(pinned_verifier(), token, MalformedTokenError, says)


@pytest.mark.parametrize("depth", [20, 100, 5000])
async def test_deep_nesting_is_refused_though_signed(depth: int) -> None:
    token = forge(
        para_header(),
        payload_text(**{AUD: f'{AUD},"x":{"[" * depth}{"]" * depth}'}),
        key=PARA,
        alg="RS256",
    )
    await assert_rejected(pinned_verifier(), token, MalformedTokenError)


# --- poisoned key sets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "published"),
    [
        pytest.param(rsa_key("small", 1024), rsa_key("small", 1024).jwk(), id="rsa-1024"),
        pytest.param(PARA, PARA.private_jwk(), id="private-key-published"),
        pytest.param(PARA, PARA.jwk(use="enc"), id="use-enc"),
        pytest.param(PARA, PARA.jwk(key_ops=["encrypt"]), id="key-ops-encrypt"),
        pytest.param(PARA, PARA.jwk(alg="ES256"), id="alg-that-does-not-fit"),
    ],
)
async def test_tokens_signed_by_skipped_keys_are_refused(
    signer: TestKey, published: dict[str, Any]
) -> None:
    verifier = pinned_verifier(published, rsa_key("other").jwk())
    await assert_rejected(verifier, signer.sign(para_payload()), UnknownKeyError, "unusable")


@pytest.mark.parametrize("impostor_first", [False, True])
async def test_a_kid_published_twice_verifies_nothing(impostor_first: bool) -> None:
    impostor = ATTACKER.jwk(kid=PARA.kid, alg="RS256")
    members = [impostor, para_jwk()] if impostor_first else [para_jwk(), impostor]
    verifier = pinned_verifier(*members, rsa_key("other").jwk())
    for signer in (PARA, ATTACKER):
        token = signer.sign(para_payload(), kid=PARA.kid)
        await assert_rejected(verifier, token, UnknownKeyError, "more than once")


# --- anything else: never an error outside InvalidTokenError -------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
CLAIM_PATHS = [
    ("exp",),
    ("nbf",),
    ("iat",),
    ("aud",),
    ("sub",),
    ("data",),
    ("data", "userId"),
    ("data", "wallets"),
    ("data", "connectedWallets"),
    ("data", "authType"),
    ("data", "oAuthMethod"),
    ("data", "telegramUserId"),
    ("data", "email"),
    ("data", "wallets", 0),
    ("data", "wallets", 0, "type"),
    ("data", "wallets", 0, "publicKey"),
]


def set_claim(payload: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    target: Any = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return payload


@pytest.mark.slow  # 300 examples, 20 s; make test: tests/test_properties.py's payload property
@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(CLAIM_PATHS), value=JSON_VALUES)
async def test_any_claim_value_is_accepted_or_an_invalid_token(
    path: tuple[str | int, ...], value: Any
) -> None:
    payload = set_claim(para_payload(), path, value)
    token = PARA.sign(payload)
    try:
        claims = await pinned_verifier().verify(token)
    except InvalidTokenError as error:
        assert_no_token_leak(error, token)
    else:
        assert claims.payload == payload


@pytest.mark.slow  # 300 examples, 20 s; make test: tests/test_properties.py's mutations
@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(GENUINE)),
            st.sampled_from(["replace", "insert", "delete"]),
            st.characters(codec="ascii"),
        ),
        min_size=1,
        max_size=3,
    )
)
async def test_no_edit_of_a_genuine_token_verifies(edits: list[tuple[int, str, str]]) -> None:
    mutated = GENUINE
    for position, operation, character in edits:
        at = min(position, len(mutated) - 1)
        if operation == "replace":
            mutated = mutated[:at] + character + mutated[at + 1 :]
        elif operation == "insert":
            mutated = mutated[:at] + character + mutated[at:]
        else:
            mutated = mutated[:at] + mutated[at + 1 :]
    verifier = pinned_verifier(token_cache_size=0)
    if mutated == GENUINE:
        assert (await verifier.verify(mutated)).user_id == USER_ID
        return
    try:
        claims = await verifier.verify(mutated)
    except InvalidTokenError as error:
        assert_no_token_leak(error, mutated)
    else:
        raise AssertionError(f"an edited token verified: {claims!r}")
