"""Strict compact JWS (RFC 7515 §7.1) parsing and signature checks.

Everything here runs on every request, before we know whether the token is
genuine, so it is strict and plain: one split, C-level base64 and JSON, and
lookups in tables built once at import time.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jws import JWSRegistry

from .errors import ConfigurationError, MalformedTokenError, UnsupportedAlgorithmError

__all__ = [
    "ALGORITHMS",
    "MAX_JSON_DEPTH",
    "Algorithm",
    "ParsedToken",
    "SignatureCheck",
    "TokenParser",
    "base64url_decode",
    "check_algorithms",
    "decode_json_object",
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
    """Validate a configured ``alg`` allow-list.

    Errors name the accepted values, never the value given: a misplaced
    argument could be a key.

    Args:
        algorithms: Algorithm names, e.g. ``["RS256"]``.

    Returns:
        The allow-list as a frozenset.

    Raises:
        ConfigurationError: Not a collection of names, empty, or naming an
            algorithm that is unknown or unsafe with a public key set.
    """
    accepted = ", ".join(ALGORITHMS)
    if isinstance(algorithms, str | bytes):
        raise ConfigurationError(
            "algorithms= must be a list of names such as ['RS256'], not a single string"
        )
    try:
        allowed = frozenset(algorithms)
    except TypeError:  # None, a number, or unhashable names
        raise ConfigurationError(
            "algorithms= must be a list of algorithm names such as ['RS256']"
        ) from None
    if not allowed:
        raise ConfigurationError("algorithms= must name at least one algorithm (Para uses RS256)")
    if not allowed <= ALGORITHMS.keys():
        raise ConfigurationError(
            f"algorithms= may only name {accepted}; 'none' and HS* can never verify "
            "tokens against a public key set"
        )
    return allowed


# --- base64url (RFC 7515 §2): no padding, no '+' '/', canonical last character ------

# Maps the URL-safe alphabet onto the standard one and '+', '/', '=' onto '!', which
# is in neither: binascii's strict mode then refuses every byte outside the base64url
# alphabet in the same C pass that decodes (a regex pre-scan more than doubles the
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


def base64url_decode(data: str | bytes) -> bytes:
    """Decode canonical, unpadded base64url (RFC 7515 §2).

    Args:
        data: The encoded text; a ``str`` must be ASCII.

    Returns:
        The decoded bytes.

    Raises:
        ValueError: ``data`` holds padding, a character outside the base64url
            alphabet, or a last character with unused bits set.
    """
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("not base64url: non-ASCII characters") from None
    leftover = len(data) & 3
    if leftover and data[-1] not in _CANONICAL_LAST[leftover]:
        raise ValueError("not canonical unpadded base64url")
    try:
        return binascii.a2b_base64(
            data.translate(_TO_STANDARD_ALPHABET) + _PADDING[leftover], strict_mode=True
        )
    except binascii.Error:
        raise ValueError("not canonical unpadded base64url") from None


def _segment(data: bytes, what: str) -> bytes:
    try:
        return base64url_decode(data)
    except ValueError:
        problem = f"the {what} is not canonical unpadded base64url"
    raise MalformedTokenError(problem)  # outside the except: no chained ValueError


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


# Built once: json.loads(..., object_pairs_hook=...) builds a new decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)
_JSON_WHITESPACE = " \t\n\r"


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
    """Decode strict JSON: UTF-8, an object, unique member names, no NaN, bounded depth.

    Args:
        raw: The document.
        what: Its name in error messages ("header", "payload", "key set").
        error: The exception class raised for a document that fails.

    Returns:
        The decoded object.

    Raises:
        MalformedTokenError: (or ``error``) The document breaks a rule.
    """
    # Errors are raised after the except blocks, not in them: a chained
    # JSONDecodeError or UnicodeDecodeError would carry the document itself (the
    # token's payload) in __context__, for any tool that walks the chain to see.
    problem = None
    try:
        # What JSONDecoder.decode does, without its Python frame and two regex
        # matches (~4,700 instructions a payload, bench_parts.py): the value,
        # with only JSON's whitespace around it (RFC 8259 §2).
        text = raw.decode("utf-8").strip(_JSON_WHITESPACE)
        value, end = _DECODER.raw_decode(text)
        if end != len(text):
            problem = "is not UTF-8 JSON"  # something after the value
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


# --- the compact serialization -------------------------------------------------------

#: Header parameters that point at keys inside or outside the token. Para's tokens
#: never carry them, and trusting any of them lets the sender choose the key.
_KEY_POINTING_HEADERS = ("jwk", "jku", "x5u", "x5c")

#: Para signs with a handful of keys and one header shape per key; this bound only
#: matters across many rotations in a long-lived process (then it starts over).
_MAX_KNOWN_HEADERS = 16


@dataclass(slots=True)
class ParsedToken:
    """A compact JWS split and decoded, its header checked; the signature is not."""

    #: The header segment as sent (base64url).
    header_b64: bytes
    header: dict[str, Any]
    payload: dict[str, Any]
    #: ``header_b64 + b"." + payload_b64``: what the signature signs.
    signing_input: bytes
    signature: bytes
    #: The header's ``alg`` (checked to be an allowed algorithm) and ``kid``
    #: (checked to be a non-empty string).
    alg: str
    kid: str


class TokenParser:
    """Parses compact JWS strictly for one verifier.

    Every token signed by one key carries the same header, so the header of a
    token whose signature verified is remembered (``remember_header``) and
    reused without decoding or checking it again. Only genuine headers get in,
    so junk cannot churn this small table; it is shared by every thread, and
    its plain dict operations are each atomic.

    Args:
        max_size: Longest token accepted, in bytes.
        algorithms: The allowed ``alg`` values (from ``check_algorithms``).
    """

    __slots__ = ("_algorithms", "_known_headers", "_max_size")

    def __init__(self, *, max_size: int, algorithms: frozenset[str]) -> None:
        self._max_size = max_size
        self._algorithms = algorithms
        self._known_headers: dict[bytes, dict[str, Any]] = {}

    def parse(self, token: str | bytes) -> ParsedToken:
        """Split, decode and check a compact JWS (RFC 7515 §7.1).

        Args:
            token: The compact serialization.

        Returns:
            The parsed token; its signature is not checked.

        Raises:
            MalformedTokenError: The token breaks a rule of the format.
            UnsupportedAlgorithmError: Its ``alg`` is not allowed.
        """
        if isinstance(token, str):
            if len(token) > self._max_size:
                raise MalformedTokenError(f"the token is larger than {self._max_size} bytes")
            if not token.isascii():
                raise MalformedTokenError("the token contains non-ASCII characters")
            raw = token.encode("ascii")
        elif isinstance(token, bytes):
            if len(token) > self._max_size:
                raise MalformedTokenError(f"the token is larger than {self._max_size} bytes")
            raw = token
        else:
            raise MalformedTokenError(f"the token must be str or bytes, not {type(token).__name__}")
        segments = raw.split(b".")
        if len(segments) != 3:
            raise MalformedTokenError(_wrong_shape(raw, len(segments)))
        header_b64, payload_b64, signature_b64 = segments
        header = self._known_headers.get(header_b64)
        if header is None:
            if header_b64[:7].lower() == b"bearer ":
                raise MalformedTokenError(_BEARER)
            header = decode_json_object(_segment(header_b64, "header"), "header")
            _check_header(header, self._algorithms)
        payload = decode_json_object(_segment(payload_b64, "payload"), "payload")
        signature = _segment(signature_b64, "signature")
        if not signature:
            raise MalformedTokenError("the signature is empty")
        signing_input = raw[: len(header_b64) + 1 + len(payload_b64)]
        return ParsedToken(
            header_b64, header, payload, signing_input, signature, header["alg"], header["kid"]
        )

    def remember_header(self, parsed: ParsedToken) -> None:
        """Remember ``parsed``'s header; call only once its signature verified."""
        known = self._known_headers
        if parsed.header_b64 not in known:
            if len(known) >= _MAX_KNOWN_HEADERS:
                known.clear()
            known[parsed.header_b64] = parsed.header


_BEARER = "the token starts with 'Bearer ': strip the scheme and pass the token alone"


def _wrong_shape(raw: bytes, segments: int) -> str:
    if raw[:7].lower() == b"bearer ":
        return _BEARER
    return f"a compact JWS has 3 dot-separated segments, this has {segments}"


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
