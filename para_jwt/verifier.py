"""``ParaVerifier``: from a token string to typed claims you can trust.

``verify`` is ``_verify_locally`` (no I/O) and, only when the key is not at
hand, one await for it; ``SyncParaVerifier`` shares the same core. In order:

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

import inspect
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
from ._options import check_callable, check_int, check_options, check_seconds
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

#: A verified token, its claims, the key that verified them, and the window in
#: which a hit is valid without re-reading the payload (see ``_check_times``).
_CacheEntry = tuple[str | bytes, ParaClaims, VerificationKey, float, float]


def _cache_key(token: str | bytes) -> str | bytes:
    """The token cache's key for ``token``: its last 32 characters, from its signature.

    Keyed by the whole token, the cache would hash all of it on every request
    (each request brings a new string, whose hash is not cached yet): for a
    1.4 KB Para token, over a third of a hit's work (benchmarks/bench_parts.py).
    The signature's tail is as good a key for a tenth of that. It is only a
    key: a hit needs the whole token equal to the one verified (``_cached``), so
    two tokens ending alike cost a miss, never the other's claims.
    """
    return token[-32:]

#: Latest timestamp a claim may hold (9999-12-31T23:59:59Z): beyond it, dates overflow.
_MAX_TIMESTAMP = 253_402_300_799
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
    ``async with``). One instance serves every event loop and thread: the
    verified-token cache and the key set are shared and thread-safe. Every
    failure of ``verify`` is a ``ParaJWTError``: ``InvalidTokenError`` (the
    token is bad: 401) or ``JWKSError`` (Para's keys are unreachable: 503). For
    synchronous code, ``SyncParaVerifier`` takes the same arguments.
    """

    #: The class named in configuration errors (``SyncParaVerifier`` sets its own).
    _called_as = "ParaVerifier"

    def __init__(
        self,
        api_key_id: str,
        *,
        environment: Environment | str | None = None,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_cache: JWKSCache | None = None,
        session: aiohttp.ClientSession | None = None,
        algorithms: Sequence[str] = ("RS256",),
        leeway: float = 0,
        clock: Callable[[], float] = time.time,
        max_token_size: int = 16 * 1024,
        token_cache_size: int = 4096,
        **cache_options: Unpack[CacheOptions],
    ) -> None:
        """Check the configuration; nothing is fetched until the first ``verify``.

        Args:
            api_key_id: Your API key's ID, a UUID from Para's developer portal;
                tokens carry it as ``aud``.
            environment: Para's environment (``"prod"``, ``"beta"``,
                ``"sandbox"``), whose key set is used. Exactly one key source
                (``environment``, ``jwks_url``, ``jwks``, ``jwks_cache``) is given.
            jwks_url: An explicit key-set URL (https, or http on loopback).
            jwks: A pinned key set, for offline verification; Para's rotations
                then need a redeploy.
            jwks_cache: A ready ``JWKSCache`` (borrowed: ``close()`` leaves it open),
                e.g. shared with another verifier.
            session: An ``aiohttp.ClientSession`` for key fetches, borrowed and
                never closed here; by default the key cache makes its own.
            algorithms: Accepted ``alg`` values. Para signs with RS256 only;
                PS*, ES* and EdDSA can be allowed, ``none`` and HS* never.
            leeway: Clock skew tolerated on ``exp``/``nbf``/``iat``, in seconds
                (at most 300). Default 0: a token is dead at its ``exp``, as
                Para meant (jose and PyJWT default to 0 too).
            clock: Wall-clock seconds since the epoch, for ``exp``/``nbf``/``iat``.
            max_token_size: Tokens longer than this many bytes are refused before
                parsing. Para's are about 1.3 KiB; 16 KiB leaves room for users
                with many wallets.
            token_cache_size: Verified tokens remembered (LRU); 0 turns it off.
                Only tokens that verified get in, and a hit re-checks the time
                and the key. An entry is about 5 KB, so the default 4096 holds
                about 20 MB at most; shrink it for many small worker processes.
            **cache_options: The key cache's options (``timeout``, ``min_ttl``,
                ``max_ttl``, ``default_ttl``, ``max_stale``, ``cooldown``,
                ``refetch_budget``, ``negative_ttl``, ``max_body_size``,
                ``refresh_ahead``, ``on_event``, ``initial_state``,
                ``monotonic``), documented with their defaults on ``JWKSCache``.
                The key cache gets ``clock`` too, so a ``FakeClock`` drives both.

        Raises:
            ConfigurationError: An option is missing, unknown, or out of range;
                the message names the option and what it accepts.
        """
        owner = self._called_as
        check_options(owner, cache_options, _ACCEPTED_OPTIONS)
        problem: str | None
        try:
            self._configure(
                api_key_id, environment, jwks_url, jwks, jwks_cache, session, clock, cache_options
            )
            self._algorithms = check_algorithms(algorithms)
            self._leeway = check_seconds("leeway", leeway, allow_zero=True, maximum=300)
            self._max_token_size = check_int("max_token_size", max_token_size, minimum=1024)
            self._token_cache_size = check_int("token_cache_size", token_cache_size, minimum=0)
        except ConfigurationError as exc:
            problem = str(exc)
        else:
            problem = None
        if problem is not None:
            raise ConfigurationError(f"{owner}: {problem}")
        self._parser = TokenParser(max_size=self._max_token_size, algorithms=self._algorithms)
        # An OrderedDict is the LRU: its get, move_to_end and popitem are C calls,
        # where cachetools.LRUCache wraps them in Python (bench_parts.py).
        self._token_cache: OrderedDict[str | bytes, _CacheEntry] | None = (
            OrderedDict() if token_cache_size else None  # 0 disables it
        )
        # Shared by every thread and event loop using this verifier.
        self._token_lock = threading.Lock()

    def _configure(
        self,
        api_key_id: str,
        environment: Environment | str | None,
        jwks_url: str | None,
        jwks: Mapping[str, Any] | None,
        jwks_cache: JWKSCache | None,
        session: aiohttp.ClientSession | None,
        clock: Callable[[], float],
        cache_options: CacheOptions,
    ) -> None:
        """Check the audience and the clock, and set up the one key source."""
        self._audience = _check_api_key_id(api_key_id)
        check_callable("clock", clock, "returning seconds since the epoch")
        self._clock = clock
        sources = [s for s in (environment, jwks_url, jwks, jwks_cache) if s is not None]
        if len(sources) != 1:
            raise ConfigurationError(
                "give exactly one key source: environment='prod' (or 'beta', 'sandbox'), "
                f"jwks_url=..., jwks={{...}} or jwks_cache=... (got {len(sources)})"
            )
        if (jwks is not None or jwks_cache is not None) and (cache_options or session):
            raise ConfigurationError(
                f"{', '.join(sorted([*cache_options, *(['session'] if session else [])]))}: "
                "key-cache options have no effect with jwks= or jwks_cache="
            )
        self._pinned: KeySet | None = None
        self._cache: JWKSCache | None = jwks_cache
        #: The key for a kid if it is at hand without I/O, else None. A bound
        #: method, not a wrapper: it runs on every verify, hits included.
        self._peek: Callable[[str], VerificationKey | None]
        self._owns_cache = jwks_cache is None
        if jwks_cache is not None and not isinstance(jwks_cache, JWKSCache):
            raise ConfigurationError("jwks_cache must be a para_jwt.JWKSCache")
        if jwks is not None:
            problem: str | None
            try:
                self._pinned = KeySet.from_jwks(jwks)
            except ValueError as exc:
                problem = f"jwks: {exc}"
            else:
                problem = None if self._pinned.keys else "jwks holds no usable key"
            if problem is not None:
                raise ConfigurationError(f"{problem} (see KeySet.from_jwks for the rules)")
            assert self._pinned is not None
            self._peek = self._pinned.keys.get
            return
        if jwks_cache is None:
            url = Environment.parse(environment).jwks_url if environment is not None else jwks_url
            assert url is not None
            self._cache = JWKSCache(url, session=session, clock=clock, **cache_options)
        assert self._cache is not None
        self._peek = self._cache.peek

    def __repr__(self) -> str:
        source = self._cache.url if self._cache is not None else "pinned keys"
        return f"{self._called_as}(api_key_id={self._audience!r}, keys={source!r})"

    @property
    def api_key_id(self) -> str:
        """The API key ID tokens must carry as ``aud`` (lowercase)."""
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
        """Close the key cache's HTTP session (a borrowed ``jwks_cache`` stays open)."""
        if self._cache is not None and self._owns_cache:
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
        outcome = self._verify_locally(token)
        if type(outcome) is ParaClaims:
            return outcome
        # Refusals are raised from here, where no local holds the token any more,
        # and without the traceback of the frames that did (see _scrubbed): an
        # error reporter capturing locals must not find the token.
        del token
        if type(outcome) is _Unverified:
            outcome = await self._fetch_and_complete(outcome)
            if type(outcome) is ParaClaims:
                return outcome
        assert isinstance(outcome, ParaJWTError)
        raise outcome

    def _verify_locally(self, token: str | bytes) -> ParaClaims | _Unverified | ParaJWTError:
        """Everything ``verify`` does without I/O, shared with ``SyncParaVerifier``.

        Returns:
            The claims when the token cache or a key already at hand answers;
            a refusal, scrubbed (for the caller to raise once its own frame no
            longer holds the token); otherwise the parsed, claims-checked token,
            whose key must be fetched and passed to ``_complete``.
        """
        try:
            now = self._clock()
            # Only exact str and bytes meet the cache: a subclass could redefine
            # __eq__ and __hash__ to match another user's entry, and an unhashable
            # object must fail as a malformed token, not as a TypeError.
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
        except ParaJWTError as exc:
            return _scrubbed(exc)

    async def _fetch_and_complete(self, unverified: _Unverified) -> ParaClaims | ParaJWTError:
        """Fetch the key ``unverified`` names, then ``_complete``; a refusal is returned."""
        assert self._cache is not None
        try:
            return self._complete(unverified, await self._cache.get_key(unverified.kid))
        except ParaJWTError as exc:
            return _scrubbed(exc)

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
            entry = (unverified.token, claims, key, unverified.valid_until, unverified.valid_from)
            slot = _cache_key(unverified.token)
            # Locked so that concurrent inserts never evict more than they add.
            with self._token_lock:
                token_cache[slot] = entry
                if len(token_cache) > self._token_cache_size:
                    token_cache.popitem(last=False)
        return claims

    def _cached(self, token: str | bytes, now: float) -> ParaClaims | None:
        """The claims remembered for ``token`` if they still hold at ``now``."""
        token_cache = self._token_cache
        assert token_cache is not None
        slot = _cache_key(token)
        entry = token_cache.get(slot)  # one C call on exact str/bytes keys: atomic
        if entry is None:
            return None
        verified, claims, key, valid_until, valid_from = entry
        if verified != token:
            # Another token ending alike (say, a forgery reusing a signature's
            # tail): a miss, and the entry stays for the token it belongs to.
            return None
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
                token_cache.move_to_end(slot)
            except KeyError:
                pass  # another thread evicted it since the get above
        else:
            # Expired, not yet valid (the clock went back) or the key is gone:
            # verifying from scratch names the reason from the token itself.
            token_cache.pop(slot, None)
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
        """Check ``exp`` (required), ``nbf`` and ``iat`` against ``now``, with leeway.

        Returns:
            ``(valid_until, valid_from)``: ``exp + leeway`` and the latest of
            ``nbf`` and ``iat`` (``-1`` without either).
        """
        exp = _timestamp(payload, "exp")
        if exp is None:
            raise InvalidClaimsError("the token has no 'exp' claim")
        valid_until = exp + self._leeway
        if now >= valid_until:
            raise TokenExpiredError("the token has expired")
        latest = now + self._leeway
        nbf = _timestamp(payload, "nbf")
        if nbf is not None and nbf > latest:
            raise TokenNotYetValidError("the token is not valid yet ('nbf')")
        iat = _timestamp(payload, "iat")
        if iat is not None and iat > latest:
            raise TokenNotYetValidError("the token was issued in the future ('iat')")
        valid_from = -1.0 if nbf is None else nbf
        if iat is not None and iat > valid_from:
            valid_from = iat
        return valid_until, valid_from

    async def refresh(self) -> None:
        """Fetch Para's keys now, e.g. at startup so the first request does not wait.

        Raises:
            JWKSUnavailableError: The fetch failed.
        """
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


#: Every keyword ``ParaVerifier`` takes, for the "did you mean" of a misspelled one.
_ACCEPTED_OPTIONS = frozenset(
    [*inspect.signature(ParaVerifier.__init__).parameters, *CacheOptions.__optional_keys__]
) - {"self", "api_key_id", "cache_options"}
