"""``ParaVerifier``: from a token string to typed claims you can trust.

Read top to bottom, ``verify`` is the whole path:

1. the verified-token cache (the same client sends the same token for its
   whole lifetime; a hit re-checks time and the key, never trusts blindly);
2. strict compact-JWS parsing and header rules (``_jws``);
3. the registered claims ``aud``/``exp``/``nbf``/``iat``, checked *before* the
   key lookup so that a token that is going to fail anyway cannot make us
   refetch Para's keys;
4. the key named by ``kid`` (``jwks``: cached, refetched within limits);
5. the signature, with joserfc's algorithm on a key imported once per fetch;
6. Para's own claims (``ParaClaims.from_payload``).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import aiohttp

from ._jws import ParsedToken, TokenParser, check_algorithms
from ._options import check_callable, check_int, check_seconds
from .claims import ParaClaims
from .environments import Environment
from .errors import (
    ConfigurationError,
    InvalidAudienceError,
    InvalidClaimsError,
    InvalidSignatureError,
    ParaJWTError,
    TokenExpiredError,
    TokenNotYetValidError,
    UnsupportedAlgorithmError,
)
from .jwks import CacheOptions, JWKSCache, JWKSHealth, KeySet, VerificationKey

__all__ = ["ParaVerifier"]

#: A verified token's claims, the key that verified them, and the window in which
#: a hit is valid without re-reading the payload (see ``_check_times``).
_CacheEntry = tuple[ParaClaims, VerificationKey, float, float]

#: Latest timestamp a claim may hold (9999-12-31T23:59:59Z): beyond it, dates overflow.
_MAX_TIMESTAMP = 253_402_300_799
#: A NumericDate's types; bool is an int in Python, so exact types are compared.
_NUMBERS = (int, float)
_API_KEY_SHAPE = re.compile(r"(?i)(beta|prod|sandbox|dev|development|production|sk|pk)_")


@dataclass(slots=True)
class _Unverified:
    """A parsed token whose claims passed and whose signature is still to check."""

    #: The token itself when it may enter the token cache, else None.
    token: str | bytes | None
    kid: str
    parsed: ParsedToken
    valid_until: float
    valid_from: float


def _scrubbed(error: ParaJWTError) -> ParaJWTError:
    """``error`` without the traceback and chained exceptions that could hold the token.

    The frames that raised it hold the token in their locals, and a chained
    exception (a ``JSONDecodeError``'s ``doc``) can hold a decoded segment.
    """
    error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    return error.with_traceback(None)


class ParaVerifier:
    """Verifies Para JWTs for one application (``aud``) in one environment.

    Create one per process, share it, close it on shutdown (or use
    ``async with``). Every failure of ``verify`` is a ``ParaJWTError``:
    ``InvalidTokenError`` (the token is bad: 401) or ``JWKSError`` (Para's keys
    are unreachable: 503).
    """

    def __init__(
        self,
        api_key_id: str,
        *,
        # Exactly one key source: a Para environment, an explicit JWKS URL, or a
        # pinned key set (offline verification; rotations need a redeploy).
        environment: Environment | str | None = None,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        # Borrowed, never closed by the verifier; by default it makes its own.
        session: aiohttp.ClientSession | None = None,
        # Para signs with RS256 only. Others (PS*, ES*, EdDSA) can be allowed;
        # `none` and HS* never can.
        algorithms: Sequence[str] = ("RS256",),
        # Clock skew tolerated on exp/nbf/iat, in seconds. 0: a token is dead at
        # its `exp`, as Para meant (jose, PyJWT use 0 too).
        leeway: float = 0,
        clock: Callable[[], float] = time.time,
        # Tokens longer than this are refused before parsing. Para's are ~1.3 KiB;
        # 16 KiB leaves room for users with many wallets.
        max_token_size: int = 16 * 1024,
        # Verified tokens remembered (LRU); 0 turns it off. Only tokens that
        # verified get in. A hit costs ~0.8 µs against ~29 µs for verifying an
        # RS256 token (benchmarks/bench_verify.py). An entry is ~4.8 KB (the 1.4 KB
        # token and its parsed claims), so 4096 entries hold ~20 MB at most, and
        # only fill when that many distinct tokens keep arriving, which is when
        # the hits save most. Shrink it for many small worker processes.
        token_cache_size: int = 4096,
        # Key-cache options (timeout, min_ttl, max_ttl, default_ttl, max_stale,
        # cooldown, refetch_budget, negative_ttl, max_body_size, refresh_ahead,
        # on_event, initial_state): see JWKSCache for each default and why.
        **cache_options: Unpack[CacheOptions],
    ) -> None:
        self._audience = _check_api_key_id(api_key_id)
        self._algorithms = check_algorithms(algorithms)
        self._leeway = check_seconds("leeway", leeway, allow_zero=True, maximum=300)
        self._max_token_size = check_int("max_token_size", max_token_size, minimum=1024)
        self._token_cache_size = check_int("token_cache_size", token_cache_size, minimum=0)
        check_callable("clock", clock, "returning seconds since the epoch")
        self._clock = clock
        self._parser = TokenParser(max_size=self._max_token_size, algorithms=self._algorithms)
        # An OrderedDict is the LRU: its get, move_to_end and popitem are C calls.
        # cachetools.LRUCache wraps the same operations in Python (a miss raises
        # and catches KeyError twice): a new token meeting a full cache cost
        # ~1.1 µs there against ~0.7 µs here, hashing included (bench_parts.py).
        self._token_cache: OrderedDict[str | bytes, _CacheEntry] | None = (
            OrderedDict() if token_cache_size else None  # 0 disables it
        )
        # Shared by every thread and event loop using this verifier.
        self._token_lock = threading.Lock()

        if jwks is not None and cache_options:
            raise ConfigurationError(
                f"{', '.join(sorted(cache_options))}: key-cache options have no effect with "
                "pinned jwks={...}"
            )
        sources = [s for s in (environment, jwks_url, jwks) if s is not None]
        if len(sources) != 1:
            raise ConfigurationError(
                "give exactly one key source: environment='prod' (or 'beta', 'sandbox'), "
                f"jwks_url=..., or jwks={{...}} (got {len(sources)})"
            )
        self._pinned: KeySet | None = None
        self._cache: JWKSCache | None = None
        if jwks is not None:
            try:
                self._pinned = KeySet.from_jwks(jwks)
            except ValueError as exc:
                raise ConfigurationError(f"jwks: {exc}") from None
            if not self._pinned.keys:
                raise ConfigurationError("jwks holds no usable key (see KeySet.from_jwks rules)")
        else:
            url = Environment.parse(environment).jwks_url if environment is not None else jwks_url
            assert url is not None
            self._cache = JWKSCache(url, session=session, clock=clock, **cache_options)

    def __repr__(self) -> str:
        source = self._cache.url if self._cache is not None else "pinned keys"
        return f"ParaVerifier(api_key_id={self._audience!r}, keys={source!r})"

    @property
    def api_key_id(self) -> str:
        return self._audience

    @property
    def jwks(self) -> JWKSCache | None:
        """The key cache (``None`` with pinned keys)."""
        return self._cache

    async def __aenter__(self) -> ParaVerifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._cache is not None:
            await self._cache.close()

    async def verify(self, token: str | bytes) -> ParaClaims:
        """Verify a Para JWT and return its typed claims.

        Args:
            token: The compact JWS, without the ``Bearer `` scheme.

        Returns:
            The token's claims, checked.

        Raises:
            InvalidTokenError: The token is bad (answer 401); a subclass names why.
            JWKSError: Para's keys cannot be had right now (answer 503).
        """
        outcome: ParaClaims | _Unverified | None = None
        try:
            outcome = self._verify_locally(token)
            if type(outcome) is ParaClaims:
                return outcome
            assert isinstance(outcome, _Unverified)
            assert self._cache is not None
            return self._complete(outcome, await self._cache.get_key(outcome.kid))
        except ParaJWTError as exc:
            error = exc
        # Raised from here, where no local holds the token any more, without the
        # traceback of the frames that did: an error reporter capturing locals
        # must not find the token (see _scrubbed).
        del token, outcome
        raise _scrubbed(error)

    def _verify_locally(self, token: str | bytes) -> ParaClaims | _Unverified:
        """Everything ``verify`` does without I/O, shared with ``SyncParaVerifier``.

        Returns:
            The claims when the token cache or a key already at hand answers;
            otherwise the parsed, claims-checked token, whose key must be
            fetched (``JWKSCache.get_key``) and passed to ``_complete``.
        """
        now = self._clock()
        # Only exact str and bytes meet the cache: a subclass could redefine __eq__
        # and __hash__ to match another user's entry, and an unhashable object
        # must fail as a malformed token, not as a TypeError.
        cacheable = self._token_cache is not None and (
            type(token) is str or type(token) is bytes
        )
        if cacheable:
            claims = self._cached(token, now)
            if claims is not None:
                return claims

        parsed = self._parser.parse(token)
        valid_until, valid_from = self._check_registered_claims(parsed.payload, now)
        unverified = _Unverified(
            token if cacheable else None, parsed.kid, parsed, valid_until, valid_from
        )
        if self._pinned is not None:
            return self._complete(unverified, self._pinned.key(unverified.kid))
        key = self._peek(unverified.kid)
        return unverified if key is None else self._complete(unverified, key)

    def _peek(self, kid: str) -> VerificationKey | None:
        """The key for ``kid`` if it is at hand without I/O, else ``None``."""
        if self._pinned is not None:
            return self._pinned.keys.get(kid)
        assert self._cache is not None
        try:
            return self._cache.peek(kid)
        except RuntimeError:
            # Past its refresh point, peek starts a refresh in the running event
            # loop; a synchronous caller has none, so SyncParaVerifier fetches the
            # key on its own loop instead, where get_key starts that refresh.
            return None

    def _complete(self, unverified: _Unverified, key: VerificationKey) -> ParaClaims:
        """Check the signature with ``key``, build the claims and remember the token."""
        parsed = unverified.parsed
        # The key's checks exist exactly for the algorithms that fit it.
        check = key.checks.get(parsed.alg)
        if check is None:
            raise UnsupportedAlgorithmError(
                f"the key named by 'kid' is not for {parsed.alg} "
                f"(it is a {key.kty}{' ' + key.curve if key.curve else ''} key)"
            )
        if not check(parsed.signing_input, parsed.signature):
            raise InvalidSignatureError("the signature does not verify")

        claims = ParaClaims.from_payload(
            parsed.payload, audience=self._audience, key_id=unverified.kid
        )
        self._parser.remember_header(parsed)
        token_cache = self._token_cache
        if unverified.token is not None and token_cache is not None:
            entry = (claims, key, unverified.valid_until, unverified.valid_from)
            # Locked so that concurrent inserts never evict more than they add.
            with self._token_lock:
                token_cache[unverified.token] = entry
                if len(token_cache) > self._token_cache_size:
                    token_cache.popitem(last=False)
        return claims

    def _cached(self, token: str | bytes, now: float) -> ParaClaims | None:
        """The claims remembered for ``token`` if they still hold at ``now``."""
        token_cache = self._token_cache
        assert token_cache is not None
        entry = token_cache.get(token)  # one C call on exact str/bytes keys: atomic
        if entry is None:
            return None
        claims, key, valid_until, valid_from = entry
        # A hit is only as good as the key that verified it: when the key left
        # the set (revocation) or the set is not fresh, verify from scratch.
        valid = (
            valid_from <= now + self._leeway
            and now < valid_until
            and self._peek(key.kid) is key
        )
        # No lock on a hit: each OrderedDict call below is one atomic C call on
        # exact str/bytes keys, and a race only costs a later miss (another
        # thread evicted or forgot the entry first), never a wrong answer.
        if valid:
            # try is free when nothing is raised; contextlib.suppress is not.
            try:  # noqa: SIM105
                token_cache.move_to_end(token)
            except KeyError:
                pass  # another thread evicted it since the get above
        else:
            # Expired, not yet valid (the clock went back) or the key is gone:
            # verifying from scratch names the reason from the token itself.
            token_cache.pop(token, None)
        return claims if valid else None

    def _check_registered_claims(
        self, payload: Mapping[str, Any], now: float
    ) -> tuple[float, float]:
        """Check aud, exp, nbf, iat (RFC 7519 §4.1) and sub's type.

        Returns the window a cache hit re-checks:
        valid while ``now < valid_until`` and ``valid_from <= now + leeway``.
        """
        aud = payload.get("aud")
        # Para sends the ID as a lowercase string: one comparison, no .lower().
        if aud != self._audience:
            self._check_audience(aud)
        valid_until, valid_from = self._check_times(payload, now)
        subject = payload.get("sub")
        if subject is not None and type(subject) is not str:
            raise InvalidClaimsError("'sub' must be a string")
        return valid_until, valid_from

    def _check_audience(self, aud: Any) -> None:
        # A UUID compares case-insensitively; anything else never matches.
        if type(aud) is str:
            if aud.lower() == self._audience:
                return
        elif type(aud) is list:
            if any(type(item) is str and item.lower() == self._audience for item in aud):
                return
        elif aud is None:
            raise InvalidAudienceError("the token has no 'aud' claim")
        raise InvalidAudienceError("the token was issued for another application ('aud')")

    def _check_times(self, payload: Mapping[str, Any], now: float) -> tuple[float, float]:
        exp: Any = payload.get("exp")
        nbf: Any = payload.get("nbf")
        iat: Any = payload.get("iat")
        # The usual case checked inline, not through three _timestamp calls;
        # anything else takes the claim-by-claim path, which words the error.
        if not (
            type(exp) in _NUMBERS
            and 0 <= exp <= _MAX_TIMESTAMP
            and (nbf is None or (type(nbf) in _NUMBERS and 0 <= nbf <= _MAX_TIMESTAMP))
            and (iat is None or (type(iat) in _NUMBERS and 0 <= iat <= _MAX_TIMESTAMP))
        ):
            return self._check_times_one_by_one(payload, now)
        valid_until = exp + self._leeway
        if now >= valid_until:
            raise TokenExpiredError("the token has expired")
        latest = now + self._leeway
        if nbf is not None and nbf > latest:
            raise TokenNotYetValidError("the token is not valid yet ('nbf')")
        if iat is not None and iat > latest:
            raise TokenNotYetValidError("the token was issued in the future ('iat')")
        if nbf is None:
            return valid_until, -1.0 if iat is None else iat
        return valid_until, nbf if iat is None else max(nbf, iat)

    def _check_times_one_by_one(
        self, payload: Mapping[str, Any], now: float
    ) -> tuple[float, float]:
        exp = _timestamp(payload, "exp")
        if exp is None:
            raise InvalidClaimsError("the token has no 'exp' claim")
        valid_until = exp + self._leeway
        if now >= valid_until:
            raise TokenExpiredError("the token has expired")
        valid_from = -1.0
        nbf = _timestamp(payload, "nbf")
        if nbf is not None:
            if nbf > now + self._leeway:
                raise TokenNotYetValidError("the token is not valid yet ('nbf')")
            valid_from = nbf
        iat = _timestamp(payload, "iat")
        if iat is not None:
            if iat > now + self._leeway:
                raise TokenNotYetValidError("the token was issued in the future ('iat')")
            valid_from = max(valid_from, iat)
        return valid_until, valid_from

    async def refresh(self) -> None:
        """Fetch Para's keys now, e.g. at startup so the first request does not wait."""
        if self._cache is not None:
            await self._cache.refresh()

    def health(self) -> JWKSHealth | None:
        """The key cache's health snapshot (``None`` with pinned keys)."""
        return self._cache.health() if self._cache is not None else None


def _timestamp(payload: Mapping[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    # bool is an int in Python, so the exact types. The range check also refuses
    # NaN and the infinities (every comparison with NaN is false), and compares
    # ints of any size exactly (math.isfinite overflows on 10**400).
    if (type(value) is int or type(value) is float) and 0 <= value <= _MAX_TIMESTAMP:
        return float(value)
    raise InvalidClaimsError(f"'{name}' must be a NumericDate (seconds since the epoch)")


def _check_api_key_id(api_key_id: Any) -> str:
    if not isinstance(api_key_id, str) or not api_key_id.strip():
        raise ConfigurationError(
            "api_key_id is required: your API key's ID, a UUID shown in Para's developer "
            "portal. Tokens carry it as 'aud'."
        )
    if _API_KEY_SHAPE.match(api_key_id):
        raise ConfigurationError(
            "api_key_id looks like an API key, not its ID: pass the API key's ID (a UUID "
            "such as 8c67b747-...) from Para's developer portal. Never put a secret key here."
        )
    try:
        parsed = uuid.UUID(api_key_id)
    except ValueError:
        raise ConfigurationError(
            "api_key_id must be your API key's ID, a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) "
            "from Para's developer portal"
        ) from None
    if str(parsed) != api_key_id.lower():
        raise ConfigurationError("api_key_id must be a UUID in its usual 8-4-4-4-12 form")
    return api_key_id.lower()
