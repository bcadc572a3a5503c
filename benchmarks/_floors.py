"""The floors every ratio is measured against: one definition, for bench_verify and instructions.

(a) ``public_key.verify`` on the pre-split signing input (ES256: pre-DER).
(b) hand-written: split, strict canonical base64url through
    ``binascii.a2b_base64(strict_mode=True)`` (``+ / =``, junk and non-zero
    trailing bits refused), ``json.loads``, ``alg``/``kid`` check, the
    cryptography verify (ES256: raw R||S to DER), ``exp`` finite and in the
    future, ``aud``. No duplicate-name, depth, ``nbf``/``iat``/``sub`` or claims
    typing: what para_jwt adds on top of (b) is what the ratio measures.
"""

from __future__ import annotations

import binascii
import json
import math
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# Strict canonical base64url at C speed: the URL-safe alphabet mapped onto the
# standard one, '+' '/' '=' mapped onto '!' (outside both), so strict mode refuses
# them with any other junk; the last character's unused bits must be zero.
_B64 = bytes.maketrans(b"-_+/=", b"+/!!!")
_PAD = (b"", b"", b"==", b"=")
_LAST: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),
    frozenset(b"AQgw"),
    frozenset(b"AEIMQUYcgkosw048"),
)


def b64url(segment: bytes) -> bytes:
    leftover = len(segment) & 3
    if leftover and segment[-1] not in _LAST[leftover]:
        raise ValueError("not canonical base64url")
    return binascii.a2b_base64(segment.translate(_B64) + _PAD[leftover], strict_mode=True)


def signature_verifier(alg: str, public_key: Any) -> Callable[[bytes, bytes], None]:
    """``verify(raw_signature, signing_input)``, raising on a bad signature."""
    verify = public_key.verify
    if alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda signature, signing_input: verify(signature, signing_input, pkcs1, sha256)
    if alg == "ES256":
        ecdsa = ECDSA(hashes.SHA256())

        def es256(signature: bytes, signing_input: bytes) -> None:
            if len(signature) != 64:
                raise InvalidSignature
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            verify(der, signing_input, ecdsa)

        return es256
    return lambda signature, signing_input: verify(signature, signing_input)


def floor_a(alg: str, public_key: Any) -> tuple[Callable[[Any], Any], Callable[[str], Any]]:
    """(a): the cryptography call alone, on input split (and DER-encoded) beforehand."""
    verify = public_key.verify
    if alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def call(item: tuple[bytes, bytes]) -> None:
            verify(item[0], item[1], pkcs1, sha256)

    elif alg == "ES256":
        ecdsa = ECDSA(hashes.SHA256())

        def call(item: tuple[bytes, bytes]) -> None:
            verify(item[0], item[1], ecdsa)

    else:

        def call(item: tuple[bytes, bytes]) -> None:
            verify(item[0], item[1])

    def prepare(token: str) -> tuple[bytes, bytes]:
        signing_input, _, signature_b64 = token.encode().rpartition(b".")
        signature = b64url(signature_b64)
        if alg == "ES256":
            signature = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
        return signature, signing_input

    return call, prepare


def floor_b(
    alg: str,
    public_key: Any,
    kid: str,
    audience: str,
    *,
    loads: Callable[[bytes], Any] = json.loads,
    clock: Callable[[], float] = time.time,
) -> Callable[[str], Any]:
    """(b) for one key: ``call(token)`` returns the payload or raises.

    Args:
        alg: The one algorithm accepted (``RS256``, ``ES256`` or ``EdDSA``).
        public_key: The cryptography public key.
        kid: The ``kid`` the header must name.
        audience: The ``aud`` the payload must hold.
        loads: The JSON decoder (``json.loads``; ``orjson.loads`` for a variant).
        clock: Seconds since the epoch for ``exp``; the instruction gate passes a
            fixed one so that stored tokens never expire and counts repeat.

    Returns:
        The floor's verify function.
    """
    verify = signature_verifier(alg, public_key)

    def call(token: str) -> Any:
        raw = token.encode("ascii")
        header_b64, payload_b64, signature_b64 = raw.split(b".")
        header = loads(b64url(header_b64))
        if header.get("alg") != alg or header.get("kid") != kid:
            raise ValueError("alg or kid")
        payload = loads(b64url(payload_b64))
        verify(b64url(signature_b64), raw[: len(header_b64) + 1 + len(payload_b64)])
        exp = payload.get("exp")
        if type(exp) not in (int, float) or not math.isfinite(exp) or exp <= clock():
            raise ValueError("exp")
        aud = payload.get("aud")
        if aud != audience and not (type(aud) is list and audience in aud):
            raise ValueError("aud")
        return payload

    return call
