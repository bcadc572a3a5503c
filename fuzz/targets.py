"""The checks the fuzzers run on every input, importable without atheris.

``check_token`` and ``check_jwks`` are what ``fuzz_verify.py`` and
``fuzz_jwks.py`` hand to libFuzzer, and what ``tests/test_fuzz_corpus.py``
replays over the committed seed corpus in the normal suite. Each raises
``AssertionError`` (or lets an unexpected exception escape) when para_jwt
breaks a promise; libFuzzer reports either as a crash and saves the input.

Promises checked:

* ``ParaVerifier.verify`` on any ``str``/``bytes`` raises nothing outside
  ``ParaJWTError`` and never waits on I/O with a pinned key set.
* The verifier is not malleable: the only raw tokens it accepts are the
  committed seed tokens, byte for byte (the key that signed them was thrown
  away, so the fuzzer cannot sign new ones).
* ``bytes`` and ``str`` spellings of one ASCII token get the same answer, and a
  repeated token (a verified-token cache hit) gets the same answer again.
* Payloads the fuzzer writes itself are signed with a fuzz-only Ed25519 key, so
  mutations reach the claim checks behind the signature; whatever is accepted
  there must satisfy the documented claim rules.
* ``KeySet.from_jwks`` on any JSON raises only ``ValueError``, and never yields
  a usable key that is private, symmetric, RSA outside 2048-16384 bits, or on
  a non-signature curve.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Coroutine
from typing import Any

from para_jwt import KeySet, ParaClaims, ParaJWTError, ParaVerifier
from para_jwt._jws import ALGORITHMS, decode_json_object
from para_jwt._keys import MAX_KEYS, MAX_RSA_BITS, MIN_RSA_BITS
from para_jwt.testing._keys import sign_compact

from .common import API_KEY_ID, CORPUS, ED25519, HERE, NOW, default_header, ed25519_jwk

__all__ = ["SEED_TOKENS", "check_jwks", "check_keyset", "check_token"]

# The RSA key behind the committed valid seed tokens; its private half was
# discarded by make_corpus.py. Pinned, as `ParaVerifier(jwks=...)` allows.
_PINNED = json.loads((HERE / "pinned_jwks.json").read_text())
SEED_TOKENS = frozenset(
    path.read_bytes().strip() for path in sorted((CORPUS / "verify").glob("valid-*"))
)


def _clock() -> float:
    return NOW


# Production settings (RS256 only), with the token cache on, as deployed.
_RAW = ParaVerifier(API_KEY_ID, jwks=_PINNED, clock=_clock)
# The same, plus the fuzz-only Ed25519 key for payloads the fuzzer writes.
_SIGNED = ParaVerifier(
    API_KEY_ID,
    jwks={"keys": [*_PINNED["keys"], ed25519_jwk()]},
    algorithms=("RS256", "Ed25519"),
    clock=_clock,
    token_cache_size=0,
)


def _run(coroutine: Coroutine[Any, Any, ParaClaims]) -> ParaClaims:
    # With a pinned key set, verify() has nothing to wait for: driving it by hand
    # (no event loop) proves it, and keeps each input fast.
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: ParaClaims = done.value
        return result
    coroutine.close()
    raise AssertionError("verify() suspended: a pinned verifier must never wait on I/O")


def _outcome(verifier: ParaVerifier, token: str | bytes) -> ParaClaims | type[ParaJWTError]:
    try:
        return _run(verifier.verify(token))
    except ParaJWTError as error:
        return type(error)


def check_token(data: bytes) -> None:
    """One fuzz input: a raw token, a payload to sign (starting with ``{``), or a
    recipe (starting with a NUL byte) that changes members of a Para payload to
    values of other types and signs the result."""
    if data.startswith(b"{"):
        _check_signed(data)
    elif data.startswith(b"\0"):
        payload = _recipe_payload(data[1:])
        _check_signed(json.dumps(payload).encode())
    else:
        _check_raw(data)


def _check_raw(data: bytes) -> None:
    as_bytes = _outcome(_RAW, data)
    as_text = _outcome(_RAW, data.decode("latin-1"))
    if data.isascii():
        # One token, two spellings: the answer must not depend on the type.
        assert _kind(as_bytes) == _kind(as_text), (as_bytes, as_text)
    for outcome in (as_bytes, as_text):
        if isinstance(outcome, ParaClaims):
            # Without the private key, only the seeds themselves can verify.
            assert data in SEED_TOKENS, "a token that is not a seed verified"
    # The second look may be a verified-token cache hit: same answer.
    again = _outcome(_RAW, data)
    assert _kind(again) == _kind(as_bytes), (again, as_bytes)
    _outcome(_RAW, data.decode("utf-8", "surrogateescape"))


def _kind(outcome: ParaClaims | type[ParaJWTError]) -> object:
    return outcome.payload["exp"] if isinstance(outcome, ParaClaims) else outcome


def _check_signed(data: bytes) -> None:
    # "{header}\0{payload}" signs both as given; "{payload}" gets a good header.
    header, separator, payload = data.partition(b"\0")
    if not separator:
        header, payload = default_header(), data
    token = sign_compact(header, payload, ED25519, "Ed25519")
    outcome = _outcome(_SIGNED, token)
    if isinstance(outcome, ParaClaims):
        _check_accepted(outcome, payload)


# A Para-shaped payload (committed, so a crash input replays the same) and the
# places a recipe may change.
_PAYLOAD = json.loads((CORPUS / "verify" / "signed-payload").read_bytes())
_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("aud",),
    ("exp",),
    ("nbf",),
    ("iat",),
    ("sub",),
    ("data",),
    *(
        ("data", name)
        for name in (
            "userId",
            "wallets",
            "connectedWallets",
            "email",
            "authType",
            "identifier",
            "oAuthMethod",
            "phone",
            "telegramUserId",
            "farcasterUsername",
            "externalWalletAddress",
        )
    ),
    ("data", "wallets", 0),
    *(("data", "wallets", 0, name) for name in ("id", "type", "address", "publicKey")),
)


def _claim_value(recipe: _Recipe) -> Any:
    words = (API_KEY_ID, API_KEY_ID.upper(), _PAYLOAD["data"]["userId"], "EVM", "google", "")
    word = words[recipe.choose(len(words))]
    near_now = NOW + recipe.choose(256) - 128
    return (
        word,
        recipe.text(),
        int(near_now),
        near_now + recipe.choose(8) / 8,
        True,
        None,
        [word],
        {word: word},
        [],
        10**20,
        -1,
        # A copy: a reference to the template could be edited next, or nest in itself.
        [copy.deepcopy(_PAYLOAD["data"]["wallets"][0])],
    )[recipe.choose(12)]


def _recipe_payload(data: bytes) -> dict[str, Any]:
    recipe = _Recipe(data)
    payload: dict[str, Any] = copy.deepcopy(_PAYLOAD)
    for _ in range(1 + recipe.choose(4)):
        *parents, last = _PATHS[recipe.choose(len(_PATHS))]
        container: Any = payload
        for step in parents:
            try:
                container = container[step]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(container, dict) and recipe.choose(4) == 0:
                container.pop(last, None)
            elif isinstance(container, dict) or (
                isinstance(container, list) and isinstance(last, int) and last < len(container)
            ):
                container[last] = _claim_value(recipe)
    return payload


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _check_accepted(claims: ParaClaims, payload_bytes: bytes) -> None:
    """What the README promises about any token that verifies."""
    payload = json.loads(payload_bytes)
    assert claims.payload == payload
    aud = payload["aud"]
    audiences = aud if isinstance(aud, list) else [aud]
    # claims.audience is the configured ID; one of the token's must match it, as a
    # UUID: only ASCII case may differ.
    assert claims.audience == API_KEY_ID
    assert any(
        isinstance(a, str) and _UUID.fullmatch(a) is not None and a.lower() == API_KEY_ID
        for a in audiences
    )
    exp = payload["exp"]
    assert type(exp) in (int, float)
    assert math.isfinite(exp)
    assert exp > NOW
    for name in ("nbf", "iat"):
        if name in payload and payload[name] is not None:
            assert type(payload[name]) in (int, float)
            assert payload[name] <= NOW
    data = payload["data"]
    assert isinstance(data, dict)
    assert claims.user_id == data["userId"]
    assert isinstance(claims.user_id, str)
    assert claims.user_id
    assert payload.get("sub") in (None, claims.user_id)
    assert len(claims.wallets) == len(data.get("wallets") or [])
    assert len(claims.connected_wallets) == len(data.get("connectedWallets") or [])


# --- key sets -------------------------------------------------------------------------

_WELL_FORMED_KID = re.compile(r"[\x21-\x7e]{1,128}")
_FORBIDDEN_MEMBERS = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth", "k"))
_CURVES = {"EC": {"P-256", "P-384", "P-521"}, "OKP": {"Ed25519", "Ed448"}}


def check_jwks(data: bytes) -> None:
    """One fuzz input: a JWKS document, read strictly (as fetched) and leniently.

    An input starting with a NUL byte is instead a recipe (``_recipe_key_set``):
    real keys with members replaced by values of other types. Byte mutations of
    JSON text rarely turn ``"RS256"`` into ``["RS256"]``; a recipe does in one step.
    """
    if data.startswith(b"\0"):
        check_keyset(_recipe_key_set(data[1:]))
        return
    try:
        strict = decode_json_object(data, "key set", ValueError)
    except ValueError:
        strict = None
    if strict is not None:
        check_keyset(strict)
    try:
        lenient = json.loads(data)
    except (ValueError, RecursionError):
        return
    if lenient != strict:
        check_keyset(lenient)


class _Recipe:
    """Reads choices from fuzz bytes; past the end, every choice is 0."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def choose(self, count: int) -> int:
        byte = self._data[self._at] if self._at < len(self._data) else 0
        self._at += 1
        return byte % count

    def text(self) -> str:
        size = self.choose(24)
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk.decode("utf-8", "replace")


# Real public keys to start from (committed, so a crash input replays the same).
_TEMPLATES: list[dict[str, Any]] = json.loads((CORPUS / "jwks" / "mixed").read_bytes())["keys"]
_MEMBERS = ("kid", "kty", "alg", "use", "key_ops", "crv", "n", "e", "x", "y", "d", "k", "x5c")
_WORDS = (
    *ALGORITHMS,
    "HS256",
    "none",
    "sig",
    "enc",
    "verify",
    "sign",
    "RSA",
    "EC",
    "OKP",
    "oct",
    "P-256",
    "Ed25519",
    "X25519",
    "AQAB",
)


def _value(recipe: _Recipe) -> Any:
    kind = recipe.choose(11)
    word = _WORDS[recipe.choose(len(_WORDS))]
    return (
        word,
        recipe.text(),
        recipe.choose(256) - 128,
        recipe.choose(256) / 7,
        True,
        None,
        [word],
        {word: word},
        [],
        [[word], {"": None}],
        word + recipe.text(),
    )[kind]


def _recipe_key_set(data: bytes) -> Any:
    recipe = _Recipe(data)
    members: list[Any] = []
    for _ in range(1 + recipe.choose(4)):
        if recipe.choose(16) == 0:
            members.append(_value(recipe))
            continue
        member = dict(_TEMPLATES[recipe.choose(len(_TEMPLATES))])
        for _ in range(recipe.choose(4)):
            name = _MEMBERS[recipe.choose(len(_MEMBERS))]
            if recipe.choose(4) == 0:
                member.pop(name, None)
            else:
                member[name] = _value(recipe)
        members.append(member)
    return {"keys": members}


def check_keyset(document: Any) -> None:
    try:
        keyset = KeySet.from_jwks(document)
    except ValueError:
        # Allowed only for a document that is not {"keys": [...]}.
        assert not (isinstance(document, dict) and isinstance(document.get("keys"), list))
        return
    members = document["keys"]
    assert len(keyset.keys) <= MAX_KEYS
    published = [m.get("kid") for m in members[:MAX_KEYS] if isinstance(m, dict)]
    for kid, key in keyset.keys.items():
        assert kid == key.kid
        assert _WELL_FORMED_KID.fullmatch(kid) is not None, "an unprintable or huge kid"
        assert kid not in keyset.unusable
        assert published.count(kid) == 1, "a kid published twice must be unusable"
        _check_usable(key.jwk, key)
    # A refetch of the same document reuses every key and changes nothing.
    again = KeySet.from_jwks(document, previous=keyset)
    assert set(again.keys) == set(keyset.keys)
    assert all(again.keys[kid] is keyset.keys[kid] for kid in keyset.keys)


def _check_usable(jwk: Any, key: Any) -> None:
    assert isinstance(jwk, dict)
    assert not _FORBIDDEN_MEMBERS & jwk.keys(), "a private or symmetric key is usable"
    assert jwk.get("use") in (None, "sig")
    key_ops = jwk.get("key_ops")
    assert key_ops is None or (isinstance(key_ops, list) and "verify" in key_ops)
    assert jwk.get("alg") is None or key.algorithms == {jwk["alg"]}
    assert not key.key.is_private
    assert key.algorithms
    assert key.algorithms <= ALGORITHMS.keys()
    assert all(ALGORITHMS[a].kty == key.kty for a in key.algorithms)
    if key.kty == "RSA":
        bits = key.key.raw_value.key_size
        assert MIN_RSA_BITS <= bits <= MAX_RSA_BITS, f"usable RSA key of {bits} bits"
    else:
        assert key.kty in _CURVES
        assert key.curve in _CURVES[key.kty]
        assert jwk.get("crv") == key.curve
