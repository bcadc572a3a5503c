"""Strict compact JWS (RFC 7515 §7.1) parsing and signature checks.

Everything here runs on every request, before we know whether the token is
genuine, so it is both strict and cheap: one split, C-level base64 and JSON,
and lookups in tables built once at import time.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from joserfc.jws import JWSRegistry

from .errors import ConfigurationError, MalformedTokenError, UnsupportedAlgorithmError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "CompactJWS",
    "check_algorithms",
    "decode_json_object",
    "parse_compact",
]


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A JWS signature algorithm (RFC 7518 §3, RFC 8037, RFC 9864) and the keys it fits."""

    name: str
    #: joserfc's implementation: ``verify(signing_input, signature, key) -> bool``.
    implementation: Any
    kty: str
    #: Curves the key must be on; ``None`` for RSA.
    curves: frozenset[str] | None


def _algorithm(name: str, kty: str, *curves: str) -> Algorithm:
    return Algorithm(name, JWSRegistry.algorithms[name], kty, frozenset(curves) or None)


#: Every asymmetric algorithm para_jwt can verify. ``none`` and HS* are absent on
#: purpose: with a public key set, a MAC "verified" with a public key is forgeable.
ALGORITHMS: Mapping[str, Algorithm] = {
    a.name: a
    for a in (
        _algorithm("RS256", "RSA"),
        _algorithm("RS384", "RSA"),
        _algorithm("RS512", "RSA"),
        _algorithm("PS256", "RSA"),
        _algorithm("PS384", "RSA"),
        _algorithm("PS512", "RSA"),
        _algorithm("ES256", "EC", "P-256"),
        _algorithm("ES384", "EC", "P-384"),
        _algorithm("ES512", "EC", "P-521"),
        _algorithm("EdDSA", "OKP", "Ed25519", "Ed448"),
        _algorithm("Ed25519", "OKP", "Ed25519"),
    )
}


def check_algorithms(algorithms: Collection[str]) -> frozenset[str]:
    """Validate a configured allow-list; raise ``ConfigurationError`` if unsafe or unknown."""
    if isinstance(algorithms, str | bytes):
        raise ConfigurationError(
            f"algorithms must be a list of names, e.g. [{algorithms!r}], not a single string"
        )
    try:
        allowed = frozenset(algorithms)
    except TypeError:  # None, a number, or unhashable names
        raise ConfigurationError(
            "algorithms must be a list of algorithm names, e.g. ['RS256']"
        ) from None
    if not allowed:
        raise ConfigurationError("algorithms must name at least one algorithm (Para uses RS256)")
    unknown = sorted(str(a) for a in allowed if a not in ALGORITHMS)
    if unknown:
        raise ConfigurationError(
            f"unsupported algorithms {unknown}: choose from {sorted(ALGORITHMS)}; "
            "'none' and HS* can never verify tokens against a public key set"
        )
    return allowed


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A parsed, not yet verified, compact JWS."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


# --- base64url (RFC 7515 §2): no padding, no '+' '/', canonical last character ------

_NOT_BASE64URL = re.compile(rb"[^A-Za-z0-9_-]")
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")
# With 2 or 3 characters left over, the unused low bits of the last character must
# be zero; otherwise several strings decode to the same bytes (a malleable token).
_CANONICAL_LAST: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),
    frozenset(b"AQgw"),
    frozenset(b"AEIMQUYcgkosw048"),
)


def _base64url_decode(segment: bytes, what: str) -> bytes:
    leftover = len(segment) & 3
    if (
        leftover == 1
        or _NOT_BASE64URL.search(segment) is not None
        or (leftover and segment[-1] not in _CANONICAL_LAST[leftover])
    ):
        raise MalformedTokenError(f"the {what} is not canonical unpadded base64url")
    return binascii.a2b_base64(
        segment.translate(_TO_STANDARD_ALPHABET) + _PADDING[leftover], strict_mode=True
    )


# --- JSON (RFC 7515 §5.2 + RFC 8259): UTF-8 objects, unique names, bounded depth ----

#: Containers deeper than this are refused; Para's payload nests four deep.
MAX_JSON_DEPTH = 16


class _NotStrictJSON(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # RFC 7515 §5.2: a duplicate name could be read differently by another parser.
        raise _NotStrictJSON("duplicate member name in a JSON object")
    return obj


def _no_constant(name: str) -> NoReturn:
    raise _NotStrictJSON(f"{name} is not valid JSON")


def _nests_deeper_than(value: dict[str, Any], limit: int) -> bool:
    # Breadth-first, without recursion: the document is hostile until verified.
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
        depth += 1
    return False


def decode_json_object(
    raw: bytes, what: str, error: type[Exception] = MalformedTokenError
) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object, unique member names, no NaN/Infinity, bounded depth."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except _NotStrictJSON as exc:
        raise error(f"the {what} is not strict JSON: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise error(f"the {what} is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise error(f"the {what} is not a JSON object")
    # Counting brackets is C-speed; only a suspicious document pays for the walk.
    suspicious = text.count("{") + text.count("[") > MAX_JSON_DEPTH
    if suspicious and _nests_deeper_than(value, MAX_JSON_DEPTH):
        raise error(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


# --- the compact serialization -------------------------------------------------------

#: Header parameters that point at keys inside or outside the token. Para's tokens
#: never carry them, and trusting any of them lets the sender choose the key.
_KEY_POINTING_HEADERS = ("jwk", "jku", "x5u", "x5c")


def parse_compact(token: str | bytes, *, max_size: int, algorithms: frozenset[str]) -> CompactJWS:
    """Split, decode and check the header of a compact JWS. The signature is not checked."""
    if isinstance(token, str):
        if len(token) > max_size:
            raise MalformedTokenError(f"the token is larger than {max_size} bytes")
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedTokenError("the token contains non-ASCII characters") from None
    elif isinstance(token, bytes):
        if len(token) > max_size:
            raise MalformedTokenError(f"the token is larger than {max_size} bytes")
        raw = token
    else:
        raise MalformedTokenError(f"the token must be str or bytes, not {type(token).__name__}")

    segments = raw.split(b".")
    if len(segments) != 3:
        raise MalformedTokenError(
            f"a compact JWS has 3 dot-separated segments, this has {len(segments)}"
        )
    header_b64, payload_b64, signature_b64 = segments
    header = decode_json_object(_base64url_decode(header_b64, "header"), "header")
    _check_header(header, algorithms)
    payload = decode_json_object(_base64url_decode(payload_b64, "payload"), "payload")
    signature = _base64url_decode(signature_b64, "signature")
    if not signature:
        raise MalformedTokenError("the signature is empty")
    return CompactJWS(header, payload, raw[: len(header_b64) + 1 + len(payload_b64)], signature)


def _check_header(header: dict[str, Any], algorithms: frozenset[str]) -> None:
    alg = header.get("alg")
    if type(alg) is not str:
        raise MalformedTokenError("the header has no string 'alg'")
    if alg not in algorithms:
        shown = alg if len(alg) <= 16 and alg.isprintable() else "?"
        raise UnsupportedAlgorithmError(
            f"'alg' {shown!r} is not accepted (allowed: {', '.join(sorted(algorithms))})"
        )
    kid = header.get("kid")
    if type(kid) is not str or not kid:
        raise MalformedTokenError("the header has no string 'kid'")
    for name in _KEY_POINTING_HEADERS:
        if name in header:
            raise MalformedTokenError(
                f"the header carries {name!r}: keys come only from Para's key set"
            )
    if "crit" in header:
        raise MalformedTokenError("the header has 'crit' extensions, which are not supported")
    typ = header.get("typ")
    if typ is not None and (type(typ) is not str or typ.upper() != "JWT"):
        raise MalformedTokenError("the header's 'typ' is not 'JWT'")
