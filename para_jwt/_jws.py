"""Strict compact JWS (RFC 7515 §7.1) parsing and signature checks.

Everything here runs on every request, before we know whether the token is
genuine, so it is both strict and cheap: one split, C-level base64 and JSON,
and lookups in tables built once at import time.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jws import JWSRegistry

from .errors import ConfigurationError, MalformedTokenError, UnsupportedAlgorithmError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "CompactJWS",
    "SignatureCheck",
    "check_algorithms",
    "decode_json_object",
    "parse_compact",
    "split_compact",
]

#: ``check(signing_input, signature) -> bool`` for one key and one algorithm.
SignatureCheck = Callable[[bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A JWS signature algorithm (RFC 7518 §3, RFC 8037, RFC 9864) and the keys it fits."""

    name: str
    #: joserfc's implementation: ``verify(signing_input, signature, key) -> bool``.
    implementation: Any
    kty: str
    #: Curves the key must be on; ``None`` for RSA.
    curves: frozenset[str] | None

    def bind(self, key: Any) -> SignatureCheck:
        """This algorithm's signature check with one joserfc key, prepared once.

        joserfc's ``verify(msg, sig, key)`` calls ``key.get_op_key`` and builds a
        hash object on every call (~0.4 µs on RS256, bench_parts.py). Here the
        cryptography public key and joserfc's padding and hash come out of
        joserfc's key and algorithm objects once per imported key, so a token
        costs one cryptography call. The key must fit (type, curve): ``jwks`` binds
        only the algorithms it found fitting.
        """
        public = key.get_op_key("verify")
        implementation = self.implementation
        if self.kty == "RSA":
            return _rsa_check(public.verify, implementation.padding, implementation.hash_alg())
        if self.kty == "EC":
            size = (key.curve_key_size + 7) // 8
            return _ecdsa_check(public.verify, ECDSA(implementation.hash_alg()), size)
        return _eddsa_check(public.verify)


# Padding, hash and ECDSA objects are immutable parameter holders in cryptography,
# so one instance safely serves every call, from any thread.


def _rsa_check(verify: Callable[..., None], padding: Any, hash_: Any) -> SignatureCheck:
    def check(signing_input: bytes, signature: bytes) -> bool:
        try:
            verify(signature, signing_input, padding, hash_)
        except InvalidSignature:
            return False
        return True

    return check


def _ecdsa_check(verify: Callable[..., None], ecdsa: ECDSA, size: int) -> SignatureCheck:
    def check(signing_input: bytes, signature: bytes) -> bool:
        # RFC 7518 §3.4: R || S, each exactly the curve's size; cryptography wants DER.
        if len(signature) != 2 * size:
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        )
        try:
            verify(der, signing_input, ecdsa)
        except InvalidSignature:
            return False
        return True

    return check


def _eddsa_check(verify: Callable[..., None]) -> SignatureCheck:
    def check(signing_input: bytes, signature: bytes) -> bool:
        try:
            verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True

    return check


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

# Maps the URL-safe alphabet onto the standard one and '+', '/', '=' onto '!', which
# is in neither: binascii's strict mode then refuses every byte outside the base64url
# alphabet in the same C pass that decodes (a regex pre-scan more than doubled the
# cost: benchmarks/bench_parts.py).
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"", b"==", b"=")
# With 2 or 3 characters left over, the unused low bits of the last character must
# be zero; otherwise several strings decode to the same bytes (a malleable token).
# One left over is never valid base64: the empty set refuses it.
_CANONICAL_LAST: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),
    frozenset(b"AQgw"),
    frozenset(b"AEIMQUYcgkosw048"),
)


def _base64url_decode(segment: bytes, what: str) -> bytes:
    leftover = len(segment) & 3
    if leftover and segment[-1] not in _CANONICAL_LAST[leftover]:
        raise MalformedTokenError(f"the {what} is not canonical unpadded base64url")
    try:
        return binascii.a2b_base64(
            segment.translate(_TO_STANDARD_ALPHABET) + _PADDING[leftover], strict_mode=True
        )
    except binascii.Error:
        raise MalformedTokenError(f"the {what} is not canonical unpadded base64url") from None


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


# Built once: json.loads(..., object_pairs_hook=...) builds a new decoder and C
# scanner on every call (~1.2 µs a Para payload, bench_parts.py).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)
# The payload's fast path (see _payload_json) calls a hook-less decoder's C scanner
# (an instance attribute typeshed does not declare) directly. Scanners are reentrant:
# their key memo is only a cache.
_scan_payload: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder(
    parse_constant=_no_constant
).scan_once  # type: ignore[attr-defined]
# Deleting every byte but these leaves a short string to count: one C pass instead
# of three str.count calls.
_NOT_STRUCTURAL = bytes(sorted(set(range(256)) - set(b":{[")))


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
    # Errors are raised after the except blocks, not in them: a chained
    # JSONDecodeError or UnicodeDecodeError would carry the document itself (the
    # token's payload) in __context__, for any tool that walks the chain to see.
    problem = None
    try:
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
    except _NotStrictJSON as exc:
        problem = f"is not strict JSON: {exc}"
    except (UnicodeDecodeError, ValueError, RecursionError):
        problem = "is not UTF-8 JSON"
    if problem is not None:
        raise error(f"the {what} {problem}")
    if not isinstance(value, dict):
        raise error(f"the {what} is not a JSON object")
    # Counting brackets is C-speed; only a suspicious document pays for the walk.
    suspicious = text.count("{") + text.count("[") > MAX_JSON_DEPTH
    if suspicious and _nests_deeper_than(value, MAX_JSON_DEPTH):
        raise error(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _payload_json(raw: bytes) -> dict[str, Any]:
    """``decode_json_object`` for a token's payload, with Para's payloads at C speed.

    An ``object_pairs_hook`` sees every object's members before they collapse
    into a dict, which is how ``decode_json_object`` finds repeated names; but
    the C scanner's pairs path (a list of pairs per object, then the call) is
    slower than the counting below: 3.5 µs against 2.9 µs on a Para payload,
    depth check included (bench_parts.py). Here the payload is parsed without
    the hook and the absence of repeated names is proven by counting instead:

    * every member has exactly one ``:`` outside strings, so the ``:`` in the
      text (strings may hold more) are at least the members written;
    * members written are at least the members parsed, and a repeated name
      makes it strictly more (its members collapse into one);
    * parsed members are at least ``_members_lower_bound``'s sum of ``len()``
      over some of the parsed objects.

    So ``:`` count == that bound proves that no name repeats. It holds for
    Para's payloads (no ``:`` in their strings, every object visited); anything
    else (a colon in a string, other objects, an error, whitespace around the
    document, too many brackets for the depth bound) is decided by
    ``decode_json_object`` in full.
    """
    try:
        text = raw.decode("utf-8")
        value, end = _scan_payload(text, 0)
        scanned = end == len(text) and type(value) is dict
    except (ValueError, StopIteration, RecursionError):
        scanned = False  # the strict decoder decides, outside this except block
    if not scanned:
        return decode_json_object(raw, "payload")
    # In UTF-8, bytes below 0x80 only ever encode ASCII characters, so counting
    # bytes counts characters.
    structural = raw.translate(None, _NOT_STRUCTURAL)
    colons = structural.count(b":")
    if (
        len(structural) - colons > MAX_JSON_DEPTH  # '{' and '[': the depth bound's bracket count
        or colons != _members_lower_bound(value)
    ):
        return decode_json_object(raw, "payload")
    return cast(dict[str, Any], value)  # a dict: `scanned` checked its type


def _members_lower_bound(payload: dict[str, Any]) -> int:
    """Members of the payload, its ``data`` and the wallets there: Para's objects.

    Exact for Para's payloads, a lower bound for any other document, which is all
    ``_payload_json``'s proof needs.
    """
    members = len(payload)
    data = payload.get("data")
    if type(data) is dict:
        members += len(data)
        for name in ("wallets", "connectedWallets"):
            wallets = data.get(name)
            if type(wallets) is list:
                for wallet in wallets:
                    if type(wallet) is dict:
                        members += len(wallet)
    return members


# --- the compact serialization -------------------------------------------------------

#: Header parameters that point at keys inside or outside the token. Para's tokens
#: never carry them, and trusting any of them lets the sender choose the key.
_KEY_POINTING_HEADERS = ("jwk", "jku", "x5u", "x5c")


def parse_compact(token: str | bytes, *, max_size: int, algorithms: frozenset[str]) -> CompactJWS:
    """Split, decode and check the header of a compact JWS. The signature is not checked."""
    _, header, payload, signing_input, signature = split_compact(
        token, max_size=max_size, algorithms=algorithms
    )
    return CompactJWS(header, payload, signing_input, signature)


def split_compact(
    token: str | bytes,
    *,
    max_size: int,
    algorithms: frozenset[str],
    known_headers: Mapping[bytes, dict[str, Any]] | None = None,
) -> tuple[bytes, dict[str, Any], dict[str, Any], bytes, bytes]:
    """``parse_compact`` as a plain tuple: (header segment, header, payload,
    signing input, signature). The verifier's hot path: a tuple costs nothing to
    build or unpack, the frozen ``CompactJWS`` needs a dataclass ``__init__``.

    ``known_headers`` maps header segments that already passed every check under
    the same ``algorithms`` to their decoded header, which is then reused as is.
    """
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

    # Bytes, not str: bytes.translate is a table lookup, str.translate a dict walk
    # (1.7 µs against 4.7 µs for a Para payload, bench_parts.py).
    segments = raw.split(b".")
    if len(segments) != 3:
        raise MalformedTokenError(
            f"a compact JWS has 3 dot-separated segments, this has {len(segments)}"
        )
    header_b64, payload_b64, signature_b64 = segments
    header = None if known_headers is None else known_headers.get(header_b64)
    if header is None:
        header = decode_json_object(_base64url_decode(header_b64, "header"), "header")
        _check_header(header, algorithms)
    payload = _payload_json(_base64url_decode(payload_b64, "payload"))
    signature = _base64url_decode(signature_b64, "signature")
    if not signature:
        raise MalformedTokenError("the signature is empty")
    signing_input = raw[: len(header_b64) + 1 + len(payload_b64)]
    return header_b64, header, payload, signing_input, signature


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
