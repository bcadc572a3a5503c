"""Key import rules: per-key defects skip one key, hostile RSA parameters are refused.

Keys are real: MockPara's RSA keys, and an RSA "key" whose modulus is the
2048-bit prime of RFC 3526's group 14, with which anyone can sign.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from para_jwt import (
    ConfigurationError,
    InvalidSignatureError,
    JWKSCache,
    JWKSEvent,
    JWKSEventKind,
    JWKSUnavailableError,
    KeySet,
    ParaVerifier,
    UnknownKeyError,
)
from para_jwt._keys import decode_jwks, probably_prime
from para_jwt.testing import FakeClock, MockPara

#: RFC 3526 §3, the 2048-bit MODP group's prime.
RFC3526_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)


def b64url_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def int_of(segment: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)), "big")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
async def para(clock: FakeClock) -> AsyncIterator[MockPara]:
    async with MockPara(clock=clock) as mock:
        yield mock


# --- hostile RSA parameters -------------------------------------------------------------------


def forge_with_prime_modulus(para: MockPara, kid: str) -> str:
    """An RS256 token signed with the private exponent anyone derives from a prime n."""
    d = pow(65537, -1, RFC3526_PRIME - 1)
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    genuine = para.issue_jwt()
    payload = genuine.split(".")[1]
    signing_input = f"{header}.{payload}".encode()
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
    digest_info += hashlib.sha256(signing_input).digest()
    size = (RFC3526_PRIME.bit_length() + 7) // 8
    encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    signature = pow(int.from_bytes(encoded, "big"), d, RFC3526_PRIME).to_bytes(size, "big")
    return f"{header}.{payload}.{b64url(signature)}"


async def test_a_prime_modulus_key_is_skipped_so_a_forgery_with_it_fails(
    para: MockPara, clock: FakeClock
) -> None:
    prime_jwk = {"kty": "RSA", "kid": "prime", "n": b64url_int(RFC3526_PRIME), "e": "AQAB"}
    para.publish_jwk(prime_jwk)
    forged = forge_with_prime_modulus(para, "prime")
    # The forgery is a valid signature under that key: it is the key that must go.
    keyset_without_rule = KeySet.from_jwks({"keys": [para.public_jwk()]})
    assert keyset_without_rule.keys  # (the genuine key imports as before)
    events: list[JWKSEvent] = []
    async with para.verifier(on_event=events.append) as verifier:
        with pytest.raises(UnknownKeyError, match="modulus is prime"):
            await verifier.verify(forged)
        assert (await verifier.verify(para.issue_jwt())).key_id == para.current_kid
    skipped = [e for e in events if e.kind is JWKSEventKind.KEY_SKIPPED]
    assert [(e.kid, e.reason) for e in skipped] == [("prime", "RSA modulus is prime")]


def test_the_forgery_verifies_under_the_prime_modulus_when_nothing_refuses_the_key() -> None:
    # What the rule prevents, shown with cryptography itself.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    para = MockPara()
    forged = forge_with_prime_modulus(para, "prime")
    header, payload, signature = forged.split(".")
    public = rsa.RSAPublicNumbers(65537, RFC3526_PRIME).public_key()
    public.verify(  # raises InvalidSignature if the forgery were not valid
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        f"{header}.{payload}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda n, e: (n + 1, e), "modulus is even"),  # a real modulus, made even
        (lambda n, e: (n, 3), "public exponent"),
        (lambda n, e: (n, 65535), "public exponent"),
        (lambda n, e: (n, 65538), "public exponent"),  # even
        (lambda n, e: (n, 2**2047 + 1), "public exponent"),  # ~88x slower verifies
        (lambda n, e: (n, 2**256 + 1), "public exponent"),
    ],
    ids=["even-n", "e-3", "e-65535", "e-even", "e-2047-bits", "e-2**256+1"],
)
def test_hostile_rsa_parameters_are_skipped_with_a_reason(change: Any, reason: str) -> None:
    para = MockPara()
    real = para.public_jwk()
    n, e = change(int_of(real["n"]), int_of(real["e"]))
    hostile = {**real, "kid": "hostile", "n": b64url_int(n), "e": b64url_int(e)}
    keyset = KeySet.from_jwks({"keys": [hostile, real]})
    assert set(keyset.keys) == {real["kid"]}
    [skipped] = keyset.skipped
    assert skipped.kid == "hostile" and reason in skipped.reason


def test_exponents_within_the_nist_range_are_accepted() -> None:
    para = MockPara()
    real = para.public_jwk()
    for e in (65537, 2**255 + 1, 2**256 - 1):
        jwk = {**real, "e": b64url_int(e)}
        keyset = KeySet.from_jwks({"keys": [jwk]})
        assert set(keyset.keys) == {real["kid"]}, e
        assert keyset.keys[real["kid"]].bits == 2048


def test_rsa_parameters_must_be_unpadded_canonical_base64url() -> None:
    # One base64url decoder (_jws.base64url_decode) for tokens and keys alike:
    # padding, the standard alphabet or stray characters make the key unusable.
    para = MockPara()
    real = para.public_jwk()
    padded = real["n"] + "=" * (-len(real["n"]) % 4 or 4)
    for n in (padded, real["n"].replace("-", "+").replace("_", "/") + "+/", real["n"] + "!"):
        keyset = KeySet.from_jwks({"keys": [{**real, "n": n}]})
        assert keyset.keys == {}
        assert "not base64url" in keyset.unusable[real["kid"]]
    assert set(KeySet.from_jwks({"keys": [real]}).keys) == {real["kid"]}


@pytest.mark.parametrize("document", [None, [], {"keys": {}}, {"key": []}])
def test_a_document_that_is_no_key_set_is_a_configuration_error(document: Any) -> None:
    with pytest.raises(ConfigurationError, match="'keys' list"):
        KeySet.from_jwks(document)


def test_probably_prime_agrees_with_a_sieve_and_refuses_carmichael_numbers() -> None:
    limit = 5000
    sieve = [True] * limit
    sieve[0] = sieve[1] = False
    for i in range(2, limit):
        if sieve[i]:
            sieve[i * i :: i] = [False] * len(sieve[i * i :: i])
    passed = {n for n in range(limit) if probably_prime(n)}
    primes = {n for n in range(limit) if sieve[n]}
    # "Composite" is always proven; the composites taken for primes are the strong
    # pseudoprimes to base 2 (OEIS A001262), and refusing those as moduli fails closed.
    assert primes <= passed
    assert passed - primes == {2047, 3277, 4033, 4681}
    assert not any(probably_prime(n) for n in (561, 1105, 1729, 2465, 2821, 6601, 8911))
    assert probably_prime(RFC3526_PRIME)
    assert probably_prime(2**127 - 1) and not probably_prime((2**61 - 1) * (2**89 - 1))
    assert not probably_prime(int_of(MockPara().public_jwk()["n"]))  # a real RSA modulus


def test_verification_key_bits_is_the_one_rsa_bit_count() -> None:
    para = MockPara()
    key = KeySet.from_jwks(para.jwks()).key(para.current_kid)
    assert key.bits == 2048 and key.curve is None
    ec = MockPara(alg="ES256")
    ec_key = KeySet.from_jwks(ec.jwks()).key(ec.current_kid)
    assert ec_key.bits is None and ec_key.curve == "P-256"


# --- a defect confined to one key skips that key ---------------------------------------------


def document_with(member: str, para: MockPara) -> bytes:
    good = json.dumps(para.public_jwk())
    return f'{{"keys": [{member}, {good}]}}'.encode()


@pytest.mark.parametrize(
    ("member", "kid"),
    [
        ('{"kty": "RSA", "kid": "dup", "kid": "dup2", "n": "AQAB", "e": "AQAB"}', None),
        ('{"kty": "RSA", "kid": "dup", "e": "AQAB", "e": "AwAB"}', "dup"),
        ('{"kty": "RSA", "kid": "nan", "x": NaN}', "nan"),
        ('{"kty": "RSA", "kid": "inf", "key_ops": ["verify", -Infinity]}', "inf"),
        ('{"kty": "RSA", "kid": "deep", "ext": {"a": 1, "a": 2}}', "deep"),
        ('{"kty": "RSA", "kid": "list", "x5c": [[{"n": NaN}]]}', "list"),
        ("NaN", None),
    ],
    ids=["dup-kid", "dup-e", "nan", "infinity-in-list", "dup-nested", "nan-nested", "nan-member"],
)
async def test_a_defect_inside_one_jwk_skips_that_key_and_the_others_verify(
    para: MockPara, clock: FakeClock, member: str, kid: str | None
) -> None:
    para.set_jwks(document_with(member, para))
    events: list[JWKSEvent] = []
    async with para.verifier(on_event=events.append) as verifier:
        assert (await verifier.verify(para.issue_jwt())).key_id == para.current_kid
        health = verifier.health()
        assert health is not None and health.kids == (para.current_kid,)
        [skipped] = health.skipped
        assert skipped.kid == kid and "not strict JSON" in skipped.reason
        if kid is not None:
            with pytest.raises(UnknownKeyError, match="unusable: not strict JSON"):
                await verifier.verify(para.issue_jwt(header={"kid": kid}))
        state = verifier.jwks.export_state()  # type: ignore[union-attr]
    # The exported state is plain, strict JSON again, and warm-starts.
    text = json.dumps(state, allow_nan=False)
    async with JWKSCache(para.jwks_url, clock=clock, initial_state=json.loads(text)) as warm:
        assert warm.health().kids == (para.current_kid,)
    assert [e.kind for e in events].count(JWKSEventKind.KEY_SKIPPED) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"keys": [], "keys": []}', "duplicate member name"),
        (b'{"keys": [], "note": NaN}', "NaN"),
        (b'{"keys": [], "x": {"a": 1, "a": 1}}', "duplicate member name"),
        (b'{"keys": NaN}', "NaN"),
        (b'{"keys": [' + b"[" * 20 + b"]" * 20 + b"]}", "deeper than"),
        (b'{"keys": []}\xff', "UTF-8"),
        (b'{"keys": [}', "JSON"),
    ],
    ids=["dup-top", "nan-top", "dup-outside-keys", "nan-keys", "too-deep", "not-utf8", "not-json"],
)
async def test_whole_document_problems_still_refuse_the_document(
    para: MockPara, clock: FakeClock, body: bytes, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_jwks(body)
    para.set_jwks(body)
    async with para.verifier() as verifier:
        with pytest.raises(JWKSUnavailableError, match=reason):
            await verifier.verify(para.issue_jwt())


async def test_a_pinned_key_with_a_prime_modulus_is_skipped_too(
    para: MockPara, clock: FakeClock
) -> None:
    prime_jwk = {"kty": "RSA", "kid": "prime", "n": b64url_int(RFC3526_PRIME), "e": "AQAB"}
    verifier = ParaVerifier(
        para.api_key_id, jwks={"keys": [prime_jwk, para.public_jwk()]}, clock=clock
    )
    with pytest.raises(UnknownKeyError, match="prime"):
        await verifier.verify(forge_with_prime_modulus(para, "prime"))
    with pytest.raises(InvalidSignatureError):
        await verifier.verify(forge_with_prime_modulus(para, para.current_kid))
