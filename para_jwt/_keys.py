"""Para's public keys: the JWK import rules, ``KeySet`` and ``VerificationKey``.

A key set comes from the network, so every member is checked before it can
verify anything, and a bad member is skipped with a reason (``SkippedKey``)
instead of failing the whole set. Only a problem of the document itself (not
UTF-8, not JSON, nested too deep, a repeated top-level name, no ``keys`` list)
refuses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey

from ._jws import ALGORITHMS, SignatureCheck, base64url_decode
from .errors import ConfigurationError, UnknownKeyError

__all__ = [
    "MAX_KEYS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "KeySet",
    "SkippedKey",
    "VerificationKey",
    "decode_jwks",
    "well_formed_kid",
]

#: RSA moduli outside this range are refused: small ones are breakable, huge ones
#: make every verification slow (a remote key set must not set our CPU budget).
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
#: NIST SP 800-56B Rev. 2 §6.2.1: an RSA public exponent is odd and
#: 2**16 < e < 2**256. Below it: e = 3 and friends; above it: an exponent that
#: makes each verification many times slower.
MIN_RSA_EXPONENT = 65537
MAX_RSA_EXPONENT = 2**256
#: A key set larger than this is truncated: Para publishes a handful of keys.
MAX_KEYS = 64
#: JSON nesting allowed in a key-set document (Para's is three levels deep).
MAX_JWKS_DEPTH = 16
#: Kids are short printable strings (Para: 43-char thumbprints). Anything else in a
#: token is refused before it can cost a refetch.
_WELL_FORMED_KID = re.compile(r"[\x21-\x7e]{1,128}")
#: Members of a JWK that only a private or symmetric key has.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_KEY_TYPES: Mapping[str, Any] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_SIGNATURE_CURVES = {"EC": {"P-256", "P-384", "P-521"}, "OKP": {"Ed25519", "Ed448"}}


def well_formed_kid(kid: str) -> bool:
    """Whether ``kid`` could name a key at all (a short printable ASCII string)."""
    return _WELL_FORMED_KID.fullmatch(kid) is not None


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A public key from the set, imported once per fetch and ready to verify.

    Attributes:
        kid: The key's ID, as tokens name it in their header.
        kty: ``RSA``, ``EC`` or ``OKP``.
        curve: The curve of an EC or OKP key; ``None`` for RSA.
        bits: The modulus size of an RSA key; ``None`` for EC and OKP.
        algorithms: Algorithms this key may verify: the JWK's ``alg`` if it names
            one, else every supported algorithm of its type and curve.
        jwk: The public JWK as published (compared across fetches to reuse this object).
        key: The joserfc key object.
        checks: A ready signature check per name in ``algorithms``, so a verify
            costs one dict lookup and one cryptography call.
    """

    kid: str
    kty: str
    curve: str | None
    bits: int | None
    algorithms: frozenset[str]
    jwk: Mapping[str, Any] = field(repr=False)
    key: Any = field(repr=False)
    checks: Mapping[str, SignatureCheck] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        checks = {name: ALGORITHMS[name].bind(self.key) for name in self.algorithms}
        object.__setattr__(self, "checks", checks)


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A member of the published set that is not used, and why.

    Attributes:
        kid: The member's ``kid`` if it has a string one, else ``None``.
        reason: Why it is not used (shown in ``key_skipped`` events and ``health()``).
    """

    kid: str | None
    reason: str


class _Unusable(Exception):
    pass


# --- strict decoding of the document ------------------------------------------------------


class _Defect:
    """Stands, after decoding, for a JSON object or constant that is not strict JSON.

    The decoder never raises on these: which part of the document holds one
    decides whether a key is skipped or the document refused.
    """

    __slots__ = ("kid", "reason")

    def __init__(self, reason: str, kid: str | None = None) -> None:
        self.reason = reason
        self.kid = kid


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Defect:
    names = [name for name, _ in pairs]
    if len(set(names)) == len(names):
        return dict(pairs)
    kids = [value for name, value in pairs if name == "kid"]
    kid = kids[0] if len(kids) == 1 and type(kids[0]) is str else None
    return _Defect("not strict JSON: a duplicate member name", kid)


def _non_finite(_constant: str) -> _Defect:
    return _Defect("not strict JSON: NaN or Infinity")


_DECODER = json.JSONDecoder(object_pairs_hook=_strict_object, parse_constant=_non_finite)


def _first_defect(value: Any) -> _Defect | None:
    """The first ``_Defect`` anywhere inside ``value``, walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Defect):
            return item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children)
    return False


def decode_jwks(raw: bytes) -> dict[str, Any]:
    """Decode a JWKS document strictly, leaving per-key defects for ``KeySet`` to skip.

    Args:
        raw: The response body.

    Returns:
        The document. A member of ``keys`` that is not strict JSON (a repeated
        name or a NaN anywhere inside it) is kept as a marker that
        ``KeySet.from_jwks`` skips with its reason.

    Raises:
        ValueError: The document itself is unusable: not UTF-8, not JSON, not an
            object, nested deeper than ``MAX_JWKS_DEPTH``, or not strict JSON
            outside its ``keys`` members (a repeated top-level name, say).
    """
    # Raised after the except block: a chained decode error would carry the body.
    problem = None
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        problem = "the key set is not UTF-8 JSON"
    if problem is not None:
        raise ValueError(problem)
    if isinstance(value, _Defect):
        raise ValueError(f"the key set is {value.reason}")
    if not isinstance(value, dict):
        raise ValueError("the key set is not a JSON object")
    if _deeper_than(value, MAX_JWKS_DEPTH):
        raise ValueError(f"the key set nests deeper than {MAX_JWKS_DEPTH} levels")
    members = value.get("keys")
    outside = {name: member for name, member in value.items() if name != "keys"}
    defect = _first_defect([outside, members if not isinstance(members, list) else None])
    if defect is not None:
        raise ValueError(f"the key set is {defect.reason}")
    if isinstance(members, list):
        value["keys"] = [_marked(member) for member in members]
    return value


def _marked(member: Any) -> Any:
    defect = _first_defect(member)
    if defect is None or defect is member:
        return member
    kid = member.get("kid") if isinstance(member, dict) else None
    return _Defect(defect.reason, kid if type(kid) is str else None)


def strict_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` without the members ``decode_jwks`` marked: plain JSON again."""
    members = document.get("keys")
    if not isinstance(members, list):
        return dict(document)
    return {**document, "keys": [m for m in members if not isinstance(m, _Defect)]}


# --- the import rules ---------------------------------------------------------------------


def _base64url_int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if type(value) is not str:
        raise _Unusable(f"malformed RSA key: '{name}' is not a string")
    try:
        raw = base64url_decode(value)  # RFC 7518 §2 Base64urlUInt: unpadded base64url
    except ValueError:
        raise _Unusable(f"malformed RSA key: '{name}' is not base64url") from None
    return int.from_bytes(raw, "big")


def probably_prime(n: int) -> bool:
    """One Miller-Rabin round, base 2: ``False`` proves ``n`` composite.

    One round suffices here because both ways of being wrong fail closed: a
    composite that passes (a strong pseudoprime to base 2) is refused as if it
    were prime. The round costs one modular exponentiation of the modulus's
    size, paid once per key import.
    """
    if n < 5 or n % 2 == 0:
        return n in (2, 3)
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    x = pow(2, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _check_rsa(jwk: Mapping[str, Any]) -> int:
    """The RSA rules; returns the modulus's bit count."""
    modulus = _base64url_int(jwk, "n")
    bits = modulus.bit_length()
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise _Unusable(f"RSA key of {bits} bits (allowed: {MIN_RSA_BITS}-{MAX_RSA_BITS})")
    exponent = _base64url_int(jwk, "e")
    if exponent % 2 == 0 or not MIN_RSA_EXPONENT <= exponent < MAX_RSA_EXPONENT:
        raise _Unusable("RSA public exponent is not odd and within 65537 <= e < 2**256")
    if modulus % 2 == 0:
        raise _Unusable("RSA modulus is even")
    # With a prime modulus, phi(n) = n - 1 is public and anyone can sign.
    if probably_prime(modulus):
        raise _Unusable("RSA modulus is prime")
    return bits


def _import_jwk(jwk: Any) -> VerificationKey:
    if isinstance(jwk, _Defect):
        raise _Unusable(jwk.reason)
    if not isinstance(jwk, dict):
        raise _Unusable("not a JSON object")
    kid = jwk.get("kid")
    if type(kid) is not str or not well_formed_kid(kid):
        raise _Unusable("no usable 'kid' (a short printable string is required)")
    kty = jwk.get("kty")
    if type(kty) is not str:
        raise _Unusable("no 'kty'")
    if kty == "oct":
        raise _Unusable("symmetric key (kty 'oct')")
    if kty not in _KEY_TYPES:
        raise _Unusable("unsupported key type")
    if any(name in jwk for name in _PRIVATE_MEMBERS):
        raise _Unusable("carries private key material")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise _Unusable("'use' is not 'sig'")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (type(key_ops) is not list or "verify" not in key_ops):
        raise _Unusable("'key_ops' does not allow 'verify'")
    curve: str | None = None
    bits: int | None = None
    if kty == "RSA":
        bits = _check_rsa(jwk)
    else:
        curve = jwk.get("crv")
        if type(curve) is not str or curve not in _SIGNATURE_CURVES[kty]:
            raise _Unusable("not a signature curve")
    fitting = frozenset(
        a.name
        for a in ALGORITHMS.values()
        if a.kty == kty and (a.curves is None or curve in a.curves)
    )
    alg = jwk.get("alg")
    if alg is not None:
        # type() first: an unhashable "alg" (a list) would raise in the set lookup.
        if type(alg) is not str or alg not in fitting:
            raise _Unusable("'alg' does not fit the key or is not supported")
        fitting = frozenset((alg,))
    try:
        key = _KEY_TYPES[kty].import_key(jwk)
    except Exception:  # joserfc and cryptography raise many types for bad numbers
        raise _Unusable("malformed key parameters") from None
    if key.is_private:
        raise _Unusable("carries private key material")
    return VerificationKey(kid, kty, curve, bits, fitting, jwk, key)


@dataclass(frozen=True, slots=True)
class KeySet:
    """An imported key set: the usable keys by kid, and what was skipped.

    Immutable: a refetch builds a new one, so readers on any thread see either
    the old set or the new one, never a mix.

    Attributes:
        keys: The usable keys by kid.
        unusable: Kids that appear in the set but must not be used, with the reason.
        skipped: Every member not used, in document order.
    """

    keys: Mapping[str, VerificationKey]
    unusable: Mapping[str, str]
    skipped: tuple[SkippedKey, ...]

    @classmethod
    def from_jwks(cls, document: Any, *, previous: KeySet | None = None) -> KeySet:
        """Import a JWKS document, skipping (never failing on) bad members.

        Args:
            document: The decoded ``{"keys": [...]}`` (from ``decode_jwks`` or a dict).
            previous: The set this one replaces: keys whose JWK did not change
                are reused, so a refetch costs no re-import and keeps the
                verified-token cache valid.

        Returns:
            The imported set.

        Raises:
            ConfigurationError: ``document`` is not ``{"keys": [...]}`` (a
                ``ValueError`` too).
        """
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ConfigurationError("the key set is not a JSON object with a 'keys' list")
        keys: dict[str, VerificationKey] = {}
        unusable: dict[str, str] = {}
        skipped: list[SkippedKey] = []
        seen: set[str] = set()
        for index, jwk in enumerate(document["keys"]):
            kid = _member_kid(jwk)
            if index >= MAX_KEYS:
                skipped.append(SkippedKey(kid, f"beyond the first {MAX_KEYS} keys"))
                continue
            if kid is not None and kid in seen:
                # Two keys under one kid: choosing either would let the publisher's
                # ordering decide what verifies. The kid becomes unusable.
                keys.pop(kid, None)
                unusable[kid] = "the kid is published more than once"
                skipped.append(SkippedKey(kid, unusable[kid]))
                continue
            if kid is not None:
                seen.add(kid)
            old = previous.keys.get(kid) if previous is not None and kid is not None else None
            if old is not None and old.jwk == jwk:
                keys[old.kid] = old
                continue
            try:
                key = _import_jwk(jwk)
            except _Unusable as why:
                skipped.append(SkippedKey(kid, str(why)))
                if kid is not None:
                    unusable[kid] = str(why)
                continue
            keys[key.kid] = key
        return cls(keys, unusable, tuple(skipped))

    def key(self, kid: str) -> VerificationKey:
        """The usable key named ``kid``.

        Raises:
            UnknownKeyError: No usable key has that name; the message says why.
        """
        key = self.keys.get(kid)
        if key is not None:
            return key
        if kid in self.unusable:
            raise UnknownKeyError(f"the key named by 'kid' is unusable: {self.unusable[kid]}")
        raise UnknownKeyError("'kid' names no key in Para's key set")


def _member_kid(jwk: Any) -> str | None:
    if isinstance(jwk, _Defect):
        return jwk.kid
    kid = jwk.get("kid") if isinstance(jwk, dict) else None
    return kid if type(kid) is str else None
