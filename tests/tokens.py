"""Real keys, real signatures and hand-built tokens for the core's tests.

``forge`` builds a compact JWS from raw parts, so a test can sign exactly the
bytes it wants to attack (duplicate members, odd encodings, extra headers)
with a genuine signature: a rule is only proven if the token would verify
without it.
"""

from __future__ import annotations

import base64
import functools
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from para_jwt import InvalidTokenError, ParaVerifier, testing

#: The application's API key ID (Para's ``aud``), and the "now" every test starts at.
API_KEY_ID: Final = "8c67b747-1f0e-4e7a-9c43-2a1d5b0e9f11"
OTHER_API_KEY_ID: Final = "0b7e2c1a-5d4f-4e3b-8a29-6c1f0e9d8b7a"
NOW: Final = 1_750_000_000
USER_ID: Final = "5f0a3c2e-7b1d-4e8f-9a6c-3d2b1e0f4a5c"

AsymmetricKey = RSAKey | ECKey | OKPKey


@dataclass(frozen=True)
class TestKey:
    """A private key that signs test tokens, and its public JWK."""

    __test__ = False  # not a pytest test class

    private: AsymmetricKey

    @property
    def kid(self) -> str:
        """RFC 7638 SHA-256 thumbprint, as Para names its keys."""
        return self.private.thumbprint()

    def jwk(self, **members: Any) -> dict[str, Any]:
        """The public JWK with ``kid``; ``members`` add to or override it."""
        return {**self.private.as_dict(private=False), "kid": self.kid, **members}

    def private_jwk(self) -> dict[str, Any]:
        """The JWK with its private members (what a careless publisher might leak)."""
        return {**self.private.as_dict(private=True), "kid": self.kid}

    def sign(self, payload: dict[str, Any] | bytes, *, alg: str = "RS256", **header: Any) -> str:
        """A token signed by this key; ``header`` adds to or overrides the usual header."""
        return forge({"alg": alg, "typ": "JWT", "kid": self.kid, **header}, payload, key=self)


@functools.cache
def rsa_key(name: str = "para", bits: int = 2048) -> TestKey:
    """An RSA key, generated once per name and size (``name`` only tells keys apart)."""
    with warnings.catch_warnings():
        # joserfc warns about keys under 2048 bits: the small key is the point.
        warnings.simplefilter("ignore", SecurityWarning)
        return TestKey(RSAKey.generate_key(bits))


@functools.cache
def ec_key(curve: str = "P-256") -> TestKey:
    return TestKey(ECKey.generate_key(curve))


@functools.cache
def ed25519_key() -> TestKey:
    return TestKey(OKPKey.generate_key("Ed25519"))


def para_key() -> TestKey:
    """The key the pinned key sets publish, as Para does."""
    return rsa_key("para")


def para_jwk() -> dict[str, Any]:
    return para_key().jwk(use="sig", alg="RS256")


# --- compact JWS from raw parts --------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode_leniently(segment: str) -> bytes:
    """What a forgiving decoder reads: whitespace dropped, either alphabet, padding
    optional, unused bits ignored."""
    compact = "".join(segment.split()).translate(_TO_STANDARD_ALPHABET).rstrip("=")
    return base64.b64decode(compact + "=" * (-len(compact) % 4))


_TO_STANDARD_ALPHABET: Final = str.maketrans("-_", "+/")


def json_bytes(part: dict[str, Any] | bytes | str) -> bytes:
    """A header or payload as bytes: dicts as compact JSON, text as UTF-8, bytes as given."""
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode("utf-8")
    return json.dumps(part, separators=(",", ":")).encode("utf-8")


def forge(
    header: dict[str, Any] | bytes | str,
    payload: dict[str, Any] | bytes | str,
    key: TestKey | bytes | None = None,
    alg: str | None = None,
    signature: bytes | None = None,
) -> str:
    """A compact JWS of exactly these parts.

    Signs with ``key`` (a ``TestKey``, or bytes as an HMAC secret) using joserfc's
    algorithm ``alg`` (default: the header's ``alg``), unless ``signature`` is
    given; with neither, the signature is empty.
    """
    signing_input = f"{b64url(json_bytes(header))}.{b64url(json_bytes(payload))}"
    if signature is None:
        signature = b"" if key is None else _sign(signing_input, header, key, alg)
    return f"{signing_input}.{b64url(signature)}"


def _sign(
    signing_input: str, header: dict[str, Any] | bytes | str, key: TestKey | bytes, alg: str | None
) -> bytes:
    if alg is None:
        if not isinstance(header, dict):
            raise TypeError("give alg= when the header is raw bytes or text")
        alg = header["alg"]
    signing_key = OctKey(key, key) if isinstance(key, bytes) else key.private
    signed: bytes = JWSRegistry.algorithms[alg].sign(signing_input.encode("ascii"), signing_key)
    return signed


def with_padding(json_text: bytes, remainder: int) -> bytes:
    """``json_text`` plus trailing spaces (still the same JSON) so its length is
    ``remainder`` modulo 3, which sets how many bits its base64url form leaves unused."""
    return json_text + b" " * ((remainder - len(json_text)) % 3)


_BASE64URL_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def non_canonical(segment: str) -> str:
    """The segment with the unused low bits of its last character set.

    A forgiving decoder reads the same bytes, so a signature stays valid: the
    token is malleable unless the verifier insists on the canonical form.
    """
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]
    last = _BASE64URL_ALPHABET.index(segment[-1])
    return segment[:-1] + _BASE64URL_ALPHABET[last | ((1 << unused_bits) - 1)]


# --- Para's claim shape --------------------------------------------------------------------


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: Pass as a claim value to ``para_payload`` to leave the claim out.
ABSENT: Final = _Absent()


def para_payload(aud: Any = API_KEY_ID, **overrides: Any) -> dict[str, Any]:
    """A payload in the shape of Para's ``issueJwt()`` tokens (docs' example).

    ``overrides`` replace top-level claims; ``ABSENT`` removes one.
    """
    payload: dict[str, Any] = {
        "data": {
            "userId": USER_ID,
            "wallets": [
                {
                    "id": "0c5e0b8a-3f2d-4a1b-9c7e-6d5f4e3a2b1c",
                    "type": "EVM",
                    "address": "0x9f3c6a1e2b4d5c7e8f0a1b2c3d4e5f6a7b8c9d0e",
                    "publicKey": "0x04" + "ab" * 64,
                },
                {
                    "id": "7d6c5b4a-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
                    "type": "SOLANA",
                    "address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
                    "publicKey": "",
                },
            ],
            "email": "ada@example.com",
            "authType": "email",
            "identifier": "ada@example.com",
        },
        "iat": NOW,
        "exp": NOW + 1800,
        "sub": USER_ID,
        "aud": aud,
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not ABSENT}


def with_data(**fields: Any) -> dict[str, Any]:
    """A Para payload whose ``data`` has ``fields`` replaced (``ABSENT`` removes one)."""
    payload = para_payload()
    data = {**payload["data"], **fields}
    payload["data"] = {name: value for name, value in data.items() if value is not ABSENT}
    return payload


# --- verifying ---------------------------------------------------------------------------


class FakeClock(testing.FakeClock):
    """The library's fake clock, starting at this module's ``NOW``."""

    def __init__(self, now: float = NOW) -> None:
        super().__init__(now)


def pinned_verifier(
    *jwks: dict[str, Any], clock: FakeClock | None = None, **options: Any
) -> ParaVerifier:
    """A network-free verifier for ``API_KEY_ID`` over these JWKs (default: Para's key)."""
    return ParaVerifier(
        API_KEY_ID,
        jwks={"keys": list(jwks) or [para_jwk()]},
        clock=clock or FakeClock(),
        **options,
    )


def assert_no_token_leak(error: BaseException, token: object) -> None:
    """Neither the token, nor any of its segments, nor what they decode to, appears
    in ``str``/``repr`` of ``error``."""
    if isinstance(token, bytes):
        token = token.decode("ascii", "replace")
    if not isinstance(token, str):
        return
    shown = f"{error}\n{error!r}"
    for secret in _token_parts(token):
        # Shorter parts could occur in a message by chance ("none", "JWT").
        if len(secret) >= 12:
            assert secret not in shown, f"{type(error).__name__} shows part of the token"


def _token_parts(token: str) -> Iterator[str]:
    yield token
    for segment in token.split("."):
        yield segment
        try:
            decoded = b64url_decode_leniently(segment)
        except ValueError:
            continue
        yield decoded.decode("utf-8", "replace")
        yield repr(decoded)[2:-1]


async def assert_rejected(
    verifier: ParaVerifier, token: Any, error: type[InvalidTokenError], says: str | None = None
) -> InvalidTokenError:
    """``verify`` raises exactly ``error`` (not a subclass or sibling) whose message
    contains ``says``, and does not leak the token."""
    with pytest.raises(InvalidTokenError) as info:
        await verifier.verify(token)
    caught = info.value
    assert type(caught) is error, f"expected {error.__name__}, got {caught!r}"
    if says is not None:
        assert says in str(caught), f"{says!r} not in {str(caught)!r}"
    assert_no_token_leak(caught, token)
    return caught
